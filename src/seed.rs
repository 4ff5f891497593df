//! `rally seed`: bulk benchmark data, straight into the database. Users and events go in
//! with multi-row `INSERT`s, many rows per statement and many statements per transaction,
//! so a million events take seconds rather than a million HTTP calls.
//!
//! Every seeded user has the same password (hashed once, with the real argon2id
//! parameters, and the hash shared: this is test data). Organizers are drawn at random from
//! every user in the database. Event names are drawn from small
//! word lists, so a search has a known selectivity: every topic is in 1/25 of the names,
//! every city in 1/50 (`search=rust berlin` matches about 1 event in 1,250). Dates are
//! spread evenly over 2020–2029.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use clap::Args;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rand::Rng;

use crate::accounts::passwords;
use crate::config::DbArgs;
use crate::db::schema::users;
use crate::db::{self, DbConn};

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Events to add.
    #[arg(long, default_value_t = 1000)]
    pub events: u64,
    /// Users to add. The new events' organizers are drawn from all users in the database.
    #[arg(long, default_value_t = 20)]
    pub users: u64,
    /// The password of every seeded user.
    #[arg(
        long,
        env = "RALLY_SEED_PASSWORD",
        default_value = "bench-Passw0rd-rally"
    )]
    pub password: String,
    /// Usernames are `<prefix><n>` (emails `<prefix><n>@example.com`); default: `seed`
    /// and a random tag, so that seeding twice never collides.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Rows per INSERT statement.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
}

/// Rows per transaction: large enough to amortize the commit, small enough to keep a
/// SQLite writer from holding the lock for long.
const ROWS_PER_TX: usize = 50_000;

const ADJECTIVES: [&str; 16] = [
    "Friendly", "Annual", "Late", "Open", "Quiet", "Grand", "Small", "Weekly", "Spring", "Winter",
    "Summer", "Autumn", "Early", "Public", "Private", "Monthly",
];
const TOPICS: [&str; 25] = [
    "Rust",
    "Python",
    "Jazz",
    "Chess",
    "Poetry",
    "Cycling",
    "Cooking",
    "Climbing",
    "Film",
    "Photo",
    "Startup",
    "Design",
    "Data",
    "Music",
    "Garden",
    "Yoga",
    "Robotics",
    "History",
    "Theatre",
    "Running",
    "Science",
    "Comics",
    "Boardgame",
    "Language",
    "Wine",
];
const KINDS: [&str; 8] = [
    "Meetup",
    "Workshop",
    "Conference",
    "Night",
    "Club",
    "Talk",
    "Hackathon",
    "Festival",
];
const CITIES: [&str; 50] = [
    "Berlin",
    "Paris",
    "Lisbon",
    "Madrid",
    "Rome",
    "Vienna",
    "Prague",
    "Warsaw",
    "Oslo",
    "Dublin",
    "London",
    "Leeds",
    "Lyon",
    "Porto",
    "Milan",
    "Munich",
    "Zurich",
    "Geneva",
    "Brussels",
    "Amsterdam",
    "Hamburg",
    "Cologne",
    "Krakow",
    "Budapest",
    "Athens",
    "Sofia",
    "Helsinki",
    "Tallinn",
    "Riga",
    "Vilnius",
    "Seville",
    "Valencia",
    "Naples",
    "Turin",
    "Ghent",
    "Bergen",
    "Malmo",
    "Aarhus",
    "Bristol",
    "Glasgow",
    "Cork",
    "Nantes",
    "Lille",
    "Graz",
    "Bern",
    "Basel",
    "Bologna",
    "Florence",
    "Bilbao",
    "Gdansk",
];

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `rally seed`: adds `--users` users and `--events` events, then refreshes the planner's
/// statistics.
pub fn run(args: SeedArgs) -> ExitCode {
    match seed(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn seed(args: &SeedArgs) -> anyhow::Result<()> {
    let settings = args.db.validate()?;
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    db::migrate(&settings.url)?;
    let mut conn = db::establish(&settings.url)
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", settings.url.redacted()))?;
    if let DbConn::Sqlite(c) = &mut conn {
        // Random UUID keys touch pages all over the indexes: keep them in memory.
        c.batch_execute("PRAGMA cache_size = -262144")?;
    }
    let started = Instant::now();
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("seed{:06x}u", rand::rng().random_range(0..0x100_0000u32)));
    anyhow::ensure!(
        !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphanumeric()),
        "--prefix takes ASCII letters and digits only"
    );
    let hash = if args.users > 0 {
        passwords::hash(&args.password)?
    } else {
        String::new()
    };
    let now = Utc::now().naive_utc().format("%F %T%.6f").to_string();

    let user_rows = (0..args.users).map(|i| {
        let name = format!("{prefix}{i}");
        format!(
            "({}, {}, {}, FALSE, TRUE, {})",
            sql_text(&name),
            sql_text(&format!("{name}@example.com")),
            sql_text(&hash),
            sql_text(&now)
        )
    });
    insert_rows(
        &mut conn,
        "INSERT INTO users (username, email, password, is_staff, is_active, date_joined) VALUES ",
        user_rows,
        args.batch,
    )?;
    // Organizers: every user in the database, the ones just added and any before them.
    let organizer_ids: Vec<i64> = users::table.select(users::id).load(&mut conn)?;
    anyhow::ensure!(
        args.events == 0 || !organizer_ids.is_empty(),
        "no users to organize the events: pass --users 1 or more"
    );

    let first_day = NaiveDate::from_ymd_opt(2020, 1, 1).expect("a valid date");
    let days = (NaiveDate::from_ymd_opt(2030, 1, 1).expect("a valid date") - first_day).num_days();
    let mut rng = rand::rng();
    let event_rows = (0..args.events).map(|i| {
        let name = format!(
            "{} {} {} in {} #{i}",
            ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
            TOPICS[rng.random_range(0..TOPICS.len())],
            KINDS[rng.random_range(0..KINDS.len())],
            CITIES[rng.random_range(0..CITIES.len())],
        );
        let date = first_day + Duration::days(rng.random_range(0..days));
        let organizer = organizer_ids[rng.random_range(0..organizer_ids.len())];
        format!(
            "('{}', {}, '{}', {organizer}, '{now}', '{now}')",
            uuid::Uuid::new_v4().hyphenated(),
            sql_text(&name),
            date.format("%F"),
        )
    });
    insert_rows(
        &mut conn,
        "INSERT INTO events (id, name, date, organizer_id, created_at, updated_at) VALUES ",
        event_rows,
        args.batch,
    )?;
    let inserted = started.elapsed();

    // Bulk loads leave the planner's statistics (and PostgreSQL's visibility map, which
    // index-only scans need) behind; an operator would refresh them the same way.
    match &mut conn {
        DbConn::Postgres(c) => {
            // VACUUM refuses to run in a multi-statement string (an implicit transaction).
            c.batch_execute("VACUUM (ANALYZE) users")?;
            c.batch_execute("VACUUM (ANALYZE) events")?;
        }
        DbConn::Sqlite(c) => c.batch_execute("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE)")?,
    }
    println!(
        "Seeded {} users ({prefix}0…) and {} events in {:.1}s (+{:.1}s statistics); password: {}",
        args.users,
        args.events,
        inserted.as_secs_f64(),
        (started.elapsed() - inserted).as_secs_f64(),
        args.password
    );
    Ok(())
}

/// Runs `head` with `batch` rows per statement and `ROWS_PER_TX` rows per transaction.
fn insert_rows(
    conn: &mut DbConn,
    head: &str,
    rows: impl Iterator<Item = String>,
    batch: usize,
) -> anyhow::Result<()> {
    let mut rows = rows.peekable();
    let per_tx = ROWS_PER_TX.max(batch);
    while rows.peek().is_some() {
        db::write_tx(conn, |conn| {
            let mut in_tx = 0;
            let mut sql = String::with_capacity(batch * 160 + head.len());
            while in_tx < per_tx && rows.peek().is_some() {
                sql.clear();
                sql.push_str(head);
                for (n, row) in rows.by_ref().take(batch).enumerate() {
                    if n > 0 {
                        sql.push(',');
                    }
                    let _ = write!(sql, "{row}");
                    in_tx += 1;
                }
                conn.batch_execute(&sql)?;
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(sql_text("O'Hara"), "'O''Hara'");
    }
}
