//! The command line: `serve` (the default), `migrate`, `createsuperuser`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::accounts::{routes as accounts, store};
use crate::config::{DbArgs, LogFormat, ServeArgs};
use crate::mail::outbox;
use crate::startup::Application;
use crate::validation::Input;
use crate::{db, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "rally",
    version,
    about = "rally: an event-management backend",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, rally serves with these flags.
    #[command(flatten)]
    serve: Box<ServeArgs>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations and serve the API (what a bare `rally` does).
    Serve(Box<ServeArgs>),
    /// Apply pending migrations and exit.
    Migrate(DbArgs),
    /// Create a staff user; the password comes from RALLY_PASSWORD or a hidden prompt.
    Createsuperuser(CreateSuperuserArgs),
    /// Inspect or requeue the mail outbox.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Print the OpenAPI document (the one served at /api/schema/) and exit.
    Openapi,
    /// Bulk-insert benchmark users and events (see bench/README.md).
    Seed(crate::seed::SeedArgs),
}

#[derive(Debug, Subcommand)]
enum MailCommand {
    /// Print pending, sent and failed counts, the oldest pending mail's age, and the
    /// failed mails with their last error.
    Status(DbArgs),
    /// Requeue every failed mail with a fresh set of attempts.
    Retry(DbArgs),
}

#[derive(Debug, Args)]
struct CreateSuperuserArgs {
    #[command(flatten)]
    db: DbArgs,
    #[arg(long)]
    username: String,
    #[arg(long)]
    email: String,
}

/// Exit code for a bad setting, as for a usage error.
const BAD_SETTING: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => serve(args),
        Command::Migrate(args) => migrate(args),
        Command::Createsuperuser(args) => createsuperuser(args),
        Command::Mail(MailCommand::Status(args)) => mail_status(args),
        Command::Mail(MailCommand::Retry(args)) => mail_retry(args),
        Command::Seed(args) => crate::seed::run(args),
        Command::Openapi => {
            let doc = crate::openapi::Document::build();
            match serde_json::to_string_pretty(&doc.0) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            }
        }
    }
}

/// A direct connection for the operator commands, after bringing the schema up to date.
fn operator_connection(args: &DbArgs) -> Result<db::DbConn, ExitCode> {
    let settings = args.validate().map_err(|e| fail(e, BAD_SETTING))?;
    db::migrate(&settings.url).map_err(|e| fail(format!("{e:#}"), 1))?;
    db::establish(&settings.url).map_err(|e| fail(format!("cannot connect: {e}"), 1))
}

fn mail_status(args: DbArgs) -> ExitCode {
    let mut conn = match operator_connection(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = outbox::status(&mut conn).and_then(|s| Ok((s, outbox::failed(&mut conn, 20)?)));
    match result {
        Ok((status, failed)) => {
            println!("pending: {}", status.pending);
            println!("sent:    {}", status.sent);
            println!("failed:  {}", status.failed);
            match status.oldest_pending {
                Some(created) => {
                    let age = chrono::Utc::now().naive_utc() - created;
                    println!("oldest pending: {}s ago", age.num_seconds().max(0));
                }
                None => println!("oldest pending: none"),
            }
            for f in failed {
                println!(
                    "failed #{} to {} ({:?}) after {} attempts: {}",
                    f.id,
                    f.recipient,
                    f.subject,
                    f.attempts,
                    f.last_error.unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 1),
    }
}

fn mail_retry(args: DbArgs) -> ExitCode {
    let mut conn = match operator_connection(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match outbox::retry_failed(&mut conn) {
        Ok(n) => {
            println!("Requeued {n} failed mail(s).");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 1),
    }
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

fn serve(args: Box<ServeArgs>) -> ExitCode {
    let settings = match args.validate() {
        Ok(s) => s,
        Err(e) => return fail(e, BAD_SETTING),
    };
    telemetry::init(settings.log_format);
    let bind = settings.bind;
    let database = settings.database.url.redacted();
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        tracing::info!(%bind, port = app.port(), %database, "rally is serving");
        app.run_until_stopped().await?;
        tracing::info!("rally stopped");
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("{e:#}"), 1),
    }
}

fn migrate(args: DbArgs) -> ExitCode {
    let settings = match args.validate() {
        Ok(s) => s,
        Err(e) => return fail(e, BAD_SETTING),
    };
    match db::migrate(&settings.url) {
        Ok(applied) if applied.is_empty() => {
            println!("No migrations to apply.");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            for version in applied {
                println!("Applied {version}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{e:#}"), 1),
    }
}

fn read_password() -> Result<String, String> {
    if let Ok(pw) = std::env::var("RALLY_PASSWORD") {
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        return Err("no RALLY_PASSWORD set and no terminal to prompt on".into());
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
    let second = rpassword::prompt_password("Password (again): ").map_err(|e| e.to_string())?;
    if first != second {
        return Err("the two passwords differ".into());
    }
    Ok(first)
}

fn createsuperuser(args: CreateSuperuserArgs) -> ExitCode {
    let settings = match args.db.validate() {
        Ok(s) => s,
        Err(e) => return fail(e, BAD_SETTING),
    };
    telemetry::init(LogFormat::Text);
    let password = match read_password() {
        Ok(p) => p,
        Err(e) => return fail(e, 1),
    };
    let mut input = match Input::new(json!({
        "username": args.username,
        "email": args.email,
        "password": password,
    })) {
        Ok(i) => i,
        Err(e) => return fail(e, 1),
    };
    let account = accounts::read_new_account(&mut input);
    if let Err(crate::error::ApiError::Validation(errors)) = input.finish() {
        for (field, messages) in errors {
            for m in messages.as_array().into_iter().flatten() {
                eprintln!("error: {field}: {}", m.as_str().unwrap_or_default());
            }
        }
        return ExitCode::from(1);
    }
    let Some(account) = account else {
        return fail("invalid account", 1);
    };
    if let Err(e) = db::migrate(&settings.url) {
        return fail(format!("{e:#}"), 1);
    }
    let pool = db::build_pool(&settings);
    let result = actix_web::rt::System::new().block_on(async move {
        let username = account.username.clone();
        let taken = db::run(&pool, move |conn| {
            Ok(store::username_taken(conn, &username)?)
        })
        .await?;
        if taken {
            return Err(crate::error::ApiError::field(
                "username",
                "A user with that username already exists.",
            ));
        }
        accounts::create_account(&pool, account, true, None).await
    });
    match result {
        Ok(user) => {
            println!("Superuser {} created (id {}).", user.username, user.id);
            ExitCode::SUCCESS
        }
        Err(crate::error::ApiError::Validation(_)) => {
            fail("username: A user with that username already exists.", 1)
        }
        Err(e) => fail(format!("{e}"), 1),
    }
}
