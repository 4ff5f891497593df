//! The tables, written by hand: `diesel print-schema` differs per backend, and both
//! migration trees are kept to this one shape (UUIDs as text, naive UTC timestamps).

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        email -> Text,
        password -> Text,
        is_staff -> Bool,
        is_active -> Bool,
        date_joined -> Timestamp,
        tokens_valid_after -> Nullable<Timestamp>,
        is_verified -> Bool,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        name -> Text,
        date -> Date,
        organizer_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        starts_at -> Nullable<Timestamp>,
        ends_at -> Nullable<Timestamp>,
        timezone -> Nullable<Text>,
        description -> Text,
        location -> Text,
        online_url -> Nullable<Text>,
        capacity -> Nullable<Integer>,
        status -> Text,
        visibility -> Text,
        sequence -> Integer,
        reminders -> Text,
    }
}

diesel::table! {
    attendances (id) {
        id -> BigInt,
        event_id -> Text,
        user_id -> BigInt,
        status -> Text,
        waitlist_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    reminders (id) {
        id -> BigInt,
        event_id -> Text,
        offset_seconds -> BigInt,
        due_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    calendar_tokens (user_id) {
        user_id -> BigInt,
        token_sha256 -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    token_blacklist (jti) {
        jti -> Text,
        user_id -> Nullable<BigInt>,
        expires_at -> Timestamp,
        blacklisted_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        user_agent -> Text,
        ended_at -> Nullable<Timestamp>,
        current_jti -> Text,
    }
}

diesel::table! {
    account_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        purpose -> Text,
        token_sha256 -> Text,
        email -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        message_id -> Text,
        created_at -> Timestamp,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        sent_at -> Nullable<Timestamp>,
        failed_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (owner, idem_key) {
        owner -> Text,
        idem_key -> Text,
        method -> Text,
        path -> Text,
        request_hash -> Text,
        state -> Text,
        status -> Nullable<Integer>,
        headers -> Nullable<Text>,
        body -> Nullable<Binary>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    co_organizers (event_id, user_id) {
        event_id -> Text,
        user_id -> BigInt,
        added_at -> Timestamp,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        user_id -> BigInt,
        url -> Text,
        secret -> Text,
        events -> Text,
        active -> Bool,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        webhook_id -> Text,
        event_type -> Text,
        event_id -> Text,
        payload -> Text,
        created_at -> Timestamp,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
        failed_at -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    event_tombstones (event_id) {
        event_id -> Text,
        deleted_at -> Timestamp,
        organizer_id -> Nullable<BigInt>,
        listed -> Bool,
    }
}

diesel::table! {
    event_tombstone_viewers (user_id, event_id) {
        event_id -> Text,
        user_id -> BigInt,
    }
}

diesel::joinable!(events -> users (organizer_id));
diesel::joinable!(co_organizers -> events (event_id));
diesel::joinable!(co_organizers -> users (user_id));
diesel::joinable!(attendances -> events (event_id));
diesel::joinable!(attendances -> users (user_id));
diesel::joinable!(reminders -> events (event_id));
diesel::joinable!(calendar_tokens -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(webhooks -> users (user_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(account_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    events,
    attendances,
    reminders,
    calendar_tokens,
    token_blacklist,
    sessions,
    account_tokens,
    outbox,
    idempotency_keys,
    co_organizers,
    webhooks,
    webhook_deliveries,
    event_tombstones,
    event_tombstone_viewers
);
