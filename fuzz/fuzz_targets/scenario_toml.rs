//! Scenario files: `load_str` then `build()` on arbitrary text. Every error is one line naming the
//! file and a key path; nothing panics. Clouds larger than `common::MAX_BUILD_VALUES` values and
//! CSV paths other than the `data.csv` fixture are loaded but not built (see `common`).
#![no_main]

mod common;

use advreact::scenario::{load_str, Overrides};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// `<tmp>/advreact-fuzz-<pid>/scenario.toml`, beside a small `data.csv`.
fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("advreact-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = "time,x1,x2,w\n0,0,0,1\n0,1,0,2\n0,0,1,1\n1,2,2,1\n1,3,2,1\n";
        std::fs::write(dir.join("data.csv"), csv).unwrap();
        dir.join("scenario.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = file();
    let label = file.display().to_string();
    let scenarios = match load_str(text, file, &Overrides::default()) {
        Ok(s) => s,
        Err(e) => return common::check_config_error(&e, &label),
    };
    assert!(!scenarios.is_empty());
    for sc in &scenarios {
        if common::build_values(sc) > common::MAX_BUILD_VALUES || !common::csv_paths_are_safe(sc) {
            continue;
        }
        if let Err(e) = sc.build() {
            common::check_config_error(&e, &label);
        }
    }
});
