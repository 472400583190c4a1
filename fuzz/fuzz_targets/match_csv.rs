//! The `leadroute match` CSV readers and matcher through `match_cmd::run_files`: the
//! accounts CSV, then a NUL byte, then the contacts CSV (files in a per-process temp
//! directory, on /dev/shm when there is one).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use leadroute::cli::match_cmd::run_files;
use leadroute::matcher::MatcherConfig;
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("leadroute-fuzz-match-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
});

fuzz_target!(|data: &[u8]| {
    let (accounts, contacts) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let accounts_path = DIR.join("accounts.csv");
    let contacts_path = DIR.join("contacts.csv");
    std::fs::write(&accounts_path, accounts).unwrap();
    std::fs::write(&contacts_path, contacts).unwrap();
    let mut diagnostics = Vec::new();
    let _ = run_files(
        &accounts_path,
        &contacts_path,
        &DIR.join("out.csv"),
        &MatcherConfig::default(),
        &mut diagnostics,
    );
});
