//! Reading client input the way Django REST Framework's serializers do: every field
//! checked, every problem collected, one 400 with all of them.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, FieldErrors};

pub const REQUIRED: &str = "This field is required.";
pub const BLANK: &str = "This field may not be blank.";
pub const NULL: &str = "This field may not be null.";
pub const NOT_A_STRING: &str = "Not a valid string.";
pub const NOT_A_BOOLEAN: &str = "Must be a valid boolean.";
pub const DATE_FORMAT: &str =
    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.";

pub const DATETIME_FORMAT: &str = "Datetime has wrong format. Use one of these formats instead: \
     YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].";
pub const NOT_AN_INTEGER: &str = "A valid integer is required.";

/// A JSON object being validated field by field.
pub struct Input {
    fields: Map<String, Value>,
    errors: FieldErrors,
}

/// What a string field accepts.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    pub required: bool,
    pub max_chars: Option<usize>,
    /// DRF trims surrounding whitespace except where told not to (passwords).
    pub trim: bool,
    /// `allow_blank=True`: an empty string is a value.
    pub blank_ok: bool,
}

impl Text {
    pub const fn required(max_chars: usize) -> Self {
        Self {
            required: true,
            max_chars: Some(max_chars),
            trim: true,
            blank_ok: false,
        }
    }

    pub const fn optional(max_chars: usize) -> Self {
        Self {
            required: false,
            max_chars: Some(max_chars),
            trim: true,
            blank_ok: false,
        }
    }

    /// Optional free text where `""` is a value (a description, a location).
    pub const fn blank_ok(max_chars: usize) -> Self {
        Self {
            required: false,
            max_chars: Some(max_chars),
            trim: true,
            blank_ok: true,
        }
    }

    pub const fn password() -> Self {
        Self {
            required: true,
            max_chars: Some(4096),
            trim: false,
            blank_ok: false,
        }
    }
}

fn python_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

impl Input {
    /// Accepts only a JSON object, as DRF's serializers do.
    pub fn new(body: Value) -> Result<Self, ApiError> {
        match body {
            Value::Object(fields) => Ok(Self {
                fields,
                errors: FieldErrors::new(),
            }),
            other => {
                // DRF's serializer says this for `data=None` (a JSON `null` body).
                let message = match other {
                    Value::Null => "No data provided".to_string(),
                    other => format!(
                        "Invalid data. Expected a dictionary, but got {}.",
                        python_type_name(&other)
                    ),
                };
                let mut errors = FieldErrors::new();
                errors.insert("non_field_errors".into(), json!([message]));
                Err(ApiError::Validation(errors))
            }
        }
    }

    /// Records an error on a field; the first one recorded for a field wins its slot order.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let entry = self
            .errors
            .entry(field.to_string())
            .or_insert_with(|| json!([]));
        if let Value::Array(list) = entry {
            list.push(Value::String(message.into()));
        }
    }

    pub fn has_error(&self, field: &str) -> bool {
        self.errors.contains_key(field)
    }

    pub fn is_present(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// A string field. Numbers are accepted and turned into text, as DRF's CharField does.
    pub fn text(&mut self, field: &str, rules: Text) -> Option<String> {
        match self.fields.get(field) {
            None => {
                if rules.required {
                    self.error(field, REQUIRED);
                }
                None
            }
            Some(Value::Null) => {
                self.error(field, NULL);
                None
            }
            Some(value) => {
                let value = value.clone();
                self.read_text(field, &value, rules)
            }
        }
    }

    /// A field that may be absent (`None`), `null` (`Some(None)`) or a value read by `read`,
    /// which records its own errors (then `None`).
    pub fn nullable<T>(
        &mut self,
        field: &str,
        read: impl FnOnce(&mut Self, &Value) -> Option<T>,
    ) -> Option<Option<T>> {
        let value = self.fields.get(field)?.clone();
        if value.is_null() {
            return Some(None);
        }
        read(self, &value).map(Some)
    }

    /// A string value (for `text`, and for `nullable` fields): trimmed unless `rules` say
    /// not, bounded, with no NUL; blank only where `rules.blank_ok`.
    pub fn read_text(&mut self, field: &str, value: &Value, rules: Text) -> Option<String> {
        let text = match value {
            Value::String(s) if rules.trim => s.trim().to_string(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                self.error(field, NOT_A_STRING);
                return None;
            }
        };
        if text.is_empty() && !rules.blank_ok {
            self.error(field, BLANK);
        } else if let Some(max) = rules.max_chars
            && text.chars().count() > max
        {
            self.error(
                field,
                format!("Ensure this field has no more than {max} characters."),
            );
        } else if text.contains('\0') {
            self.error(field, "Null characters are not allowed.");
        } else {
            return Some(text);
        }
        None
    }

    /// An RFC 3339 date-time with its offset, for `nullable`.
    pub fn read_datetime(&mut self, field: &str, value: &Value) -> Option<DateTime<FixedOffset>> {
        let parsed = value.as_str().and_then(|s| parse_datetime(s.trim()));
        if parsed.is_none() {
            self.error(field, DATETIME_FORMAT);
        }
        parsed
    }

    /// An integer within `min..=max`, for `nullable`; as DRF, `"12"` is taken for 12.
    pub fn read_integer(&mut self, field: &str, value: &Value, min: i64, max: i64) -> Option<i64> {
        let n = match value {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match n {
            None => self.error(field, NOT_AN_INTEGER),
            Some(n) if n < min => self.error(
                field,
                format!("Ensure this value is greater than or equal to {min}."),
            ),
            Some(n) if n > max => self.error(
                field,
                format!("Ensure this value is less than or equal to {max}."),
            ),
            Some(n) => return Some(n),
        }
        None
    }

    /// A `YYYY-MM-DD` date field.
    pub fn date(&mut self, field: &str, required: bool) -> Option<NaiveDate> {
        match self.fields.get(field) {
            None => {
                if required {
                    self.error(field, REQUIRED);
                }
                None
            }
            Some(Value::Null) => {
                self.error(field, NULL);
                None
            }
            Some(Value::String(s)) => match parse_date(s.trim()) {
                Some(d) => Some(d),
                None => {
                    self.error(field, DATE_FORMAT);
                    None
                }
            },
            Some(_) => {
                self.error(field, DATE_FORMAT);
                None
            }
        }
    }

    /// An optional boolean, read as DRF's `BooleanField` reads it: `true`/`false`, and the
    /// strings and numbers Django takes for them (`"yes"`, `"off"`, `1`, `0` …).
    pub fn boolean(&mut self, field: &str) -> Option<bool> {
        const TRUE: [&str; 14] = [
            "t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "1",
        ];
        const FALSE: [&str; 14] = [
            "f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
            "0",
        ];
        let parsed = match self.fields.get(field)? {
            Value::Null => {
                self.error(field, NULL);
                return None;
            }
            Value::Bool(b) => Some(*b),
            Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
            Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
            Value::String(s) if TRUE.contains(&s.as_str()) => Some(true),
            Value::String(s) if FALSE.contains(&s.as_str()) => Some(false),
            _ => None,
        };
        if parsed.is_none() {
            self.error(field, NOT_A_BOOLEAN);
        }
        parsed
    }

    /// One of a fixed set of string values.
    pub fn choice(&mut self, field: &str, choices: &[&'static str]) -> Option<&'static str> {
        match self.fields.get(field) {
            None => {
                self.error(field, REQUIRED);
                None
            }
            Some(Value::Null) => {
                self.error(field, NULL);
                None
            }
            Some(v) => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match choices.iter().find(|c| **c == text) {
                    Some(c) => Some(*c),
                    None => {
                        self.error(field, format!("\"{text}\" is not a valid choice."));
                        None
                    }
                }
            }
        }
    }

    /// Ends validation: the collected errors, if any, become one 400.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// `YYYY-MM-DD`; like Django's `parse_date`, one-digit months and days are accepted.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |p: &str, min: usize, max: usize| {
        (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(y, 4, 4) || !digits(m, 1, 2) || !digits(d, 1, 2) {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// RFC 3339 with an offset (`Z` or `±hh:mm`); a date-time without one is refused, since
/// it would not say when it is. Years are kept to four digits, as Django's are.
pub fn parse_datetime(s: &str) -> Option<DateTime<FixedOffset>> {
    let t = DateTime::parse_from_rfc3339(s).ok()?;
    (1..=9999).contains(&t.naive_utc().year()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_like_django() {
        assert_eq!(
            parse_date("2026-12-01"),
            NaiveDate::from_ymd_opt(2026, 12, 1)
        );
        assert_eq!(parse_date("2026-1-5"), NaiveDate::from_ymd_opt(2026, 1, 5));
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("26-01-01"), None);
        assert_eq!(parse_date("2026-01-01T00:00"), None);
        assert_eq!(parse_date("+2026-01-01"), None);
    }

    #[test]
    fn all_field_errors_are_collected() {
        let mut input = Input::new(json!({"name": "  ", "x": 1})).unwrap();
        input.text("name", Text::required(100));
        input.date("date", true);
        let Err(ApiError::Validation(errors)) = input.finish() else {
            panic!("expected a validation error")
        };
        assert_eq!(errors["name"], json!([BLANK]));
        assert_eq!(errors["date"], json!([REQUIRED]));
    }

    #[test]
    fn booleans_read_like_drf() {
        let mut input = Input::new(json!({
            "a": true, "b": "no", "c": 1, "d": 0.0, "e": "maybe", "f": null, "g": 2, "h": [true]
        }))
        .unwrap();
        assert_eq!(input.boolean("a"), Some(true));
        assert_eq!(input.boolean("b"), Some(false));
        assert_eq!(input.boolean("c"), Some(true));
        assert_eq!(input.boolean("d"), Some(false));
        assert_eq!(input.boolean("missing"), None);
        for bad in ["e", "f", "g", "h"] {
            assert_eq!(input.boolean(bad), None, "{bad}");
        }
        let Err(ApiError::Validation(errors)) = input.finish() else {
            panic!("expected a validation error")
        };
        assert_eq!(errors["e"], json!([NOT_A_BOOLEAN]));
        assert_eq!(errors["f"], json!([NULL]));
        assert_eq!(errors["g"], json!([NOT_A_BOOLEAN]));
        assert!(!errors.contains_key("missing"));
    }

    #[test]
    fn non_objects_are_refused() {
        let Err(ApiError::Validation(errors)) = Input::new(json!([1])) else {
            panic!("expected a validation error")
        };
        assert_eq!(
            errors["non_field_errors"],
            json!(["Invalid data. Expected a dictionary, but got list."])
        );
        let Err(ApiError::Validation(errors)) = Input::new(Value::Null) else {
            panic!("expected a validation error")
        };
        assert_eq!(errors["non_field_errors"], json!(["No data provided"]));
    }
}
