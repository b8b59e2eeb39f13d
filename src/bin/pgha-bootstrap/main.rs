//! `pgha-bootstrap`: Patroni's post-init hook that makes a fresh cluster a Supabase database.

fn main() -> std::process::ExitCode {
    eprintln!("pgha-bootstrap is being written");
    std::process::ExitCode::from(1)
}
