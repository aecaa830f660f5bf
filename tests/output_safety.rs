//! `--out` never destroys anything that is not the engine's own output (issue 13, point 1): for
//! every command that writes a folder (run, uot, infer, forward, fates) and every forbidden
//! target (a folder with the user's files, `.`, `..`, a parent of the current folder, `$HOME`,
//! `/`, an existing plain file) the command exits with code 2, prints one line naming the
//! folder, and every file under the test's root is byte-identical afterwards. Re-running into a
//! command's own earlier output works; `--force` replaces foreign files but never `.`, `..`, a
//! parent of the current folder or `$HOME`; a run that fails leaves the previous output intact.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
[meta]
name = "tiny"
seed = 3
[source]
type = "gaussian"
n = 40
mean = [0.0, 0.0]
std = 0.5
[field]
type = "ou"
theta = 1.0
mean = [1.0, 0.0]
[reaction]
type = "none"
[time]
dt = 0.05
steps = 4
noise = 0.1
[report]
every = 2
metrics = ["mass", "mean"]
snapshots = 2
snapshot_particles = 40
plots = false
"#;

/// A test's world: `root/{home,a/b}`, the commands run in `root/a/b` (the user's working folder,
/// with the inputs, a folder `mine/` and a file `notes.txt` of the user's), with HOME =
/// `root/home`.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    cwd: PathBuf,
    home: PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let (home, cwd) = (root.join("home"), root.join("a/b"));
    for d in [&home, &cwd.join("mine/sub")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(root.join("top.txt"), "the user's top file\n").unwrap();
    std::fs::write(root.join("a/a.txt"), "in the parent\n").unwrap();
    std::fs::write(home.join(".bashrc"), "export X=1\n").unwrap();
    std::fs::write(cwd.join("notes.txt"), "my notes\n").unwrap();
    std::fs::write(cwd.join("mine/results.txt"), "precious\n").unwrap();
    std::fs::write(cwd.join("mine/sub/deep.bin"), [0u8, 1, 2, 255]).unwrap();
    std::fs::write(cwd.join("s.toml"), SCENARIO).unwrap();
    let variants =
        "\n[[variants]]\nlabel = \"slow\"\nfield = { theta = 0.5 }\n[[variants]]\nlabel = \"fast\"\n";
    std::fs::write(cwd.join("v.toml"), format!("{SCENARIO}{variants}")).unwrap();
    std::os::unix::fs::symlink(cwd.join("mine"), cwd.join("link")).unwrap();
    // Two clouds for uot, three time points for infer/forward/fates.
    let cloud = |shift: f64, n: usize| -> String {
        let mut s = String::from("x1,x2\n");
        for i in 0..n {
            let u = i as f64 / n as f64;
            s += &format!("{},{}\n", (6.3 * u).cos() + shift, (6.3 * u).sin() * 0.5);
        }
        s
    };
    std::fs::write(cwd.join("a.csv"), cloud(0.0, 20)).unwrap();
    std::fs::write(cwd.join("b.csv"), cloud(0.5, 24)).unwrap();
    let mut data = String::from("time,x1,x2\n");
    for t in 0..3 {
        for i in 0..24 {
            let u = i as f64 / 24.0;
            data +=
                &format!("{t},{},{}\n", (6.3 * u).cos() * (1.0 + t as f64 * 0.3), (6.3 * u).sin() + t as f64);
        }
    }
    std::fs::write(cwd.join("data.csv"), data).unwrap();
    World { _tmp: tmp, root, cwd, home }
}

/// The arguments of each writing command, without `--out` (`run` twice: a scenario without and
/// one with variants, whose top folder is checked before any variant runs).
fn commands() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("run", vec!["run", "s.toml", "-q"]),
        ("run", vec!["run", "v.toml", "-q"]),
        ("uot", vec!["uot", "a.csv", "b.csv", "--eps", "0.5", "--tau-a", "1", "--tau-b", "1"]),
        ("infer", vec!["infer", "data.csv", "--holdout", "1", "--method", "wot"]),
        ("forward", vec!["forward", "data.csv", "--method", "wot"]),
        ("fates", vec!["fates", "data.csv", "--from", "0", "--to", "2", "--clusters", "2"]),
        ("map", vec!["map", "a.csv", "b.csv"]),
    ]
}

fn advreact(w: &World, args: &[&str], out: &str, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .args(["--out", out])
        .args(extra)
        .current_dir(&w.cwd)
        .env("HOME", &w.home)
        .output()
        .expect("run advreact")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2, nothing on stdout, one line on stderr naming `out`, containing `why`.
fn assert_refused(o: &Output, what: &str, out: &str, why: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what} --out {out}: {e}");
    assert!(o.stdout.is_empty(), "{what} --out {out}: printed {}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(e.lines().count(), 1, "{what} --out {out}: not one line: {e}");
    assert!(e.starts_with(&format!("error: {out}: --out: ")), "{what} --out {out}: {e}");
    assert!(e.contains(why), "{what} --out {out}: expected '{why}' in: {e}");
}

/// The forbidden targets (as given on the command line) and the reason each is refused.
fn forbidden(w: &World) -> Vec<(String, &'static str)> {
    vec![
        ("mine".to_string(), "holds files that are not an advreact"),
        (".".to_string(), "is '.' or '..'"),
        ("..".to_string(), "is '.' or '..'"),
        ("./".to_string(), "is '.' or '..'"),
        (w.root.display().to_string(), "is the current folder or contains it"),
        (w.root.join("a").display().to_string(), "is the current folder or contains it"),
        (w.cwd.display().to_string(), "is the current folder or contains it"),
        (w.home.display().to_string(), "is the home folder"),
        ("/".to_string(), "is the root folder"),
        ("notes.txt".to_string(), "is an existing file, not a folder"),
        ("link".to_string(), "is a symbolic link"),
    ]
}

#[test]
fn every_writing_command_refuses_every_forbidden_target_and_touches_nothing() {
    let w = world();
    let before = tree(&w.root);
    for (what, args) in commands() {
        for (out, why) in forbidden(&w) {
            let o = advreact(&w, &args, &out, &[]);
            assert_refused(&o, what, &out, why);
            assert!(tree(&w.root) == before, "{what} --out {out}: files changed");
        }
    }
}

/// `resume DIR` checks DIR like `--out`: never a foreign folder, `.`, `..` or the home folder.
#[test]
fn resume_refuses_folders_that_are_not_run_output() {
    let w = world();
    let before = tree(&w.root);
    for (dir, why) in [
        ("mine".to_string(), "holds files that are not an advreact run output"),
        ("..".to_string(), "is '.' or '..'"),
        (w.home.display().to_string(), "is the home folder"),
    ] {
        let o = Command::new(bin())
            .args(["resume", &dir])
            .current_dir(&w.cwd)
            .env("HOME", &w.home)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.starts_with(&format!("error: {dir}: DIR: ")) && e.contains(why), "{e}");
    }
    assert!(tree(&w.root) == before);
}

#[test]
fn force_replaces_foreign_files_but_never_cwd_its_parents_or_home() {
    let w = world();
    for (i, (what, args)) in commands().into_iter().enumerate() {
        let before = tree(&w.root);
        for (out, why) in forbidden(&w) {
            if out == "mine" || out == "notes.txt" || out == "link" {
                continue;
            }
            let o = advreact(&w, &args, &out, &["--force"]);
            assert_refused(&o, what, &out, why);
            assert!(tree(&w.root) == before, "{what} --out {out} --force: files changed");
        }
        // A plain file is never replaced by a folder, forced or not.
        assert_refused(&advreact(&w, &args, "notes.txt", &["--force"]), what, "notes.txt", "existing file");
        // A foreign folder is replaced as a whole with --force.
        let dir = format!("foreign_{i}");
        std::fs::create_dir_all(w.cwd.join(&dir)).unwrap();
        std::fs::write(w.cwd.join(&dir).join("x.txt"), "mine").unwrap();
        let o = advreact(&w, &args, &dir, &["--force"]);
        assert!(o.status.success(), "{what} --force: {}", stderr(&o));
        let d = w.cwd.join(&dir);
        assert!(!d.join("x.txt").exists(), "{what}: foreign file kept");
        let marker = std::fs::read_to_string(d.join(".advreact-output")).unwrap();
        assert_eq!(marker, format!("{{\"kind\":\"{what}\",\"format\":1}}\n"));
        // Nothing else in the working folder changed (no partial or replaced sibling left).
        let mut now = tree(&w.root);
        now.retain(|p, _| !p.starts_with(Path::new("a/b").join(&dir)));
        let mut was = before.clone();
        was.retain(|p, _| !p.starts_with(Path::new("a/b").join(&dir)));
        assert!(now == was, "{what} --force: files outside {dir} changed");
    }
}

#[test]
fn rerunning_into_own_output_works_and_other_kinds_are_refused() {
    let w = world();
    for (i, (what, args)) in commands().into_iter().enumerate() {
        let out = format!("out_{i}");
        for _ in 0..2 {
            let o = advreact(&w, &args, &out, &[]);
            assert!(o.status.success(), "{what} into its own output: {}", stderr(&o));
        }
        let names: Vec<String> = std::fs::read_dir(&w.cwd)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&out))
            .collect();
        assert_eq!(names, vec![out.clone()], "{what}: siblings left behind");
        // An empty existing folder is fine to use.
        let empty = format!("empty_{i}");
        std::fs::create_dir(w.cwd.join(&empty)).unwrap();
        let o = advreact(&w, &args, &empty, &[]);
        assert!(o.status.success(), "{what} into an empty folder: {}", stderr(&o));
    }
    // Another command's output is foreign.
    let before = tree(&w.root);
    let (_, uot) = &commands()[2];
    let o = advreact(&w, uot, "out_0", &[]);
    assert_refused(&o, "uot", "out_0", "holds the output of `advreact run`");
    let (_, run) = &commands()[0];
    let o = advreact(&w, run, "out_5", &[]);
    assert_refused(&o, "run", "out_5", "of `advreact fates`, not of `run`");
    assert!(tree(&w.root) == before);
}

#[test]
fn a_failing_command_leaves_the_previous_output_intact() {
    let w = world();
    // infer into X, then an infer that fails (a holdout that is not in the data) into X.
    let (_, infer) = &commands()[3];
    assert!(advreact(&w, infer, "X", &[]).status.success());
    let before = tree(&w.root);
    let bad = ["infer", "data.csv", "--holdout", "7", "--method", "wot"];
    let o = advreact(&w, &bad, "X", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(tree(&w.root) == before, "a failed infer changed files");

    // A long run into its own earlier output, killed midway: the earlier output is untouched.
    let long = SCENARIO.replace("n = 40", "n = 20000").replace("steps = 4", "steps = 100000")
        + "checkpoint_every = 2\n";
    std::fs::write(w.cwd.join("long.toml"), long).unwrap();
    let o = advreact(&w, &["run", "long.toml", "-q", "--steps", "2"], "R", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = tree(&w.root);
    let mut child = Command::new(bin())
        .args(["run", "long.toml", "-q", "--out", "R"])
        .current_dir(&w.cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ck = w.cwd.join(".R.partial/checkpoint.bin");
    let t0 = Instant::now();
    while !ck.exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ck.exists(), "no checkpoint appeared");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut now = tree(&w.root);
    now.retain(|p, _| !p.starts_with("a/b/.R.partial"));
    assert!(now == before, "a killed run changed the previous output");
}

#[test]
fn results_never_writes_over_a_folder() {
    let w = world();
    let before = tree(&w.root);
    let o = Command::new(bin())
        .args(["results", "inference", "--out", "mine", "--data-dir", "nowhere"])
        .current_dir(&w.cwd)
        .output()
        .unwrap();
    assert_refused(&o, "results", "mine", "is a folder; a file is written here");
    assert!(tree(&w.root) == before);
    // A user's file is never overwritten either: only an earlier results file (its title line).
    std::fs::write(w.cwd.join("notes.md"), "my notes\n").unwrap();
    let before = tree(&w.root);
    let o = Command::new(bin())
        .args(["results", "inference", "--out", "notes.md", "--data-dir", "nowhere"])
        .current_dir(&w.cwd)
        .output()
        .unwrap();
    assert_refused(&o, "results", "notes.md", "exists and is not an earlier output of this command");
    assert!(tree(&w.root) == before);
    // An earlier results file passes the check (the run then fails on the missing data folder,
    // and the file is left as it was).
    std::fs::write(w.cwd.join("old.md"), "# Trajectory inference results\n\nold\n").unwrap();
    let before = tree(&w.root);
    let o = Command::new(bin())
        .args(["results", "inference", "--out", "old.md", "--data-dir", "nowhere"])
        .current_dir(&w.cwd)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("nowhere") && !err.contains("old.md"), "{err}");
    assert!(tree(&w.root) == before);
}
