//! Output folders: which folder a command may write, and writing it atomically. Every command
//! that writes a folder (`run`, `uot`, `infer`, `forward`, `fates`, `fit`, `map`) goes through [`Target`].
//!
//! **Marker.** Every output folder holds a file `.advreact-output` written by the engine, with
//! the fixed content `{"kind":"<command>","format":1}` and a newline (no timestamp: two runs give
//! the same bytes). `kind` is the command that wrote it ([`Kind`]).
//!
//! **What may be replaced.** [`Target::check`] runs before anything is touched. A target may be
//! a folder that does not exist, an empty folder, or a folder whose marker names the same kind.
//! Refused, with a one-line error naming the folder and the reason:
//! - a folder with foreign files: non-empty without a marker, or with a marker of another kind
//!   (`--force` overrides this one: the folder is then replaced as a whole);
//! - `.` or `..`, the current folder or any folder containing it, the home folder (`$HOME`) and
//!   `/` (compared canonicalised; `--force` never overrides these);
//! - an existing plain file or a symbolic link.
//!
//! **Atomic replacement.** The new folder is written into the hidden sibling `.<name>.partial`
//! (created with its marker by [`Target::begin`]). When it is complete, [`Target::commit`]
//! renames an older folder aside to `.<name>.replaced`, renames the partial folder into place
//! and only then removes the old one. A command that fails before leaves the older folder as
//! it was. A partial or replaced sibling is only ever deleted when it carries our marker.

use crate::error::{ConfigError, Error};
use std::path::{Component, Path, PathBuf};

/// The marker file's name.
pub const MARKER: &str = ".advreact-output";

/// The key a library caller's folder errors carry ([`Target::check`]): `<folder>: output folder:
/// <reason>`. The command line checks its folders with [`Target::check_as`] and its flag instead.
pub const FOLDER_KEY: &str = "output folder";

/// How the override of the foreign-files refusal is named in messages: the `--force` flag on the
/// command line, the `force` option ([`crate::run::RunOptions::force`]) for a library caller.
fn force_name(key: &str) -> &'static str {
    if key == FOLDER_KEY {
        "force"
    } else {
        "--force"
    }
}

/// The command that wrote an output folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `advreact run` (and `resume`).
    Run,
    /// `advreact uot`.
    Uot,
    /// `advreact infer`.
    Infer,
    /// `advreact forward`.
    Forward,
    /// `advreact fates`.
    Fates,
    /// `advreact fit`.
    Fit,
    /// `advreact map`.
    Map,
}

impl Kind {
    /// The command's name, as the marker writes it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Uot => "uot",
            Kind::Infer => "infer",
            Kind::Forward => "forward",
            Kind::Fates => "fates",
            Kind::Fit => "fit",
            Kind::Map => "map",
        }
    }

    /// The marker's exact content.
    pub fn marker(self) -> String {
        format!("{{\"kind\":\"{}\",\"format\":1}}\n", self.name())
    }
}

/// The kind named by the marker in `dir`, if any (`Some("?")` for an unreadable marker).
fn marker_kind(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(MARKER)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Some(v["kind"].as_str().unwrap_or("?").to_string())
}

/// True if `dir` is a folder carrying the marker of `kind`.
pub fn is_ours(dir: &Path, kind: Kind) -> bool {
    marker_kind(dir).as_deref() == Some(kind.name())
}

/// Write the marker of `kind` into the folder `dir`.
pub fn write_marker(dir: &Path, kind: Kind) -> Result<(), Error> {
    let p = dir.join(MARKER);
    std::fs::write(&p, kind.marker()).map_err(|e| Error::io(&p, e))
}

/// Check a single output file (`results`): it may be new, or an earlier output whose first line
/// is `first_line`; a folder, or a file with other content (the user's), is refused with a
/// one-line error naming it. `key` names the flag.
pub fn check_file(path: &Path, first_line: &str, key: &'static str) -> Result<(), Error> {
    let refuse = |why: String| -> Error { ConfigError::new(path.display().to_string(), key, why).into() };
    if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(refuse("is a folder; a file is written here (give a file name)".into()));
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symbolic link; give the file itself".into()));
    }
    let head = std::fs::read_to_string(path).ok();
    if head.as_deref().and_then(|t| t.lines().next()) != Some(first_line) {
        return Err(refuse(format!(
            "exists and is not an earlier output of this command (its first line is not '{first_line}'); \
             give another file name or remove it"
        )));
    }
    Ok(())
}

/// The hidden sibling `.<name>.<suffix>` of `out`.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
    parent.join(format!(".{name}.{suffix}"))
}

/// The hidden folder an output is written into before it is complete.
pub fn partial_dir(out: &Path) -> PathBuf {
    sibling(out, "partial")
}

/// `p` made absolute and canonical as far as it exists (a missing last component is appended).
fn canonical(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().ok()?.join(p) };
    let parent = abs.parent()?;
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    Some(canonical(parent)?.join(abs.file_name()?))
}

/// A folder a command is allowed to write (see the module docs).
#[derive(Debug, Clone)]
pub struct Target {
    /// The folder.
    pub path: PathBuf,
    /// The command writing it.
    pub kind: Kind,
    /// Replace a folder with foreign files (never the protected ones).
    pub force: bool,
    /// How the folder was given, for messages ([`FOLDER_KEY`]; `--out`, or `DIR` for `resume`).
    pub key: &'static str,
}

impl Target {
    /// Check `path` as the output folder of `kind`; nothing is written. A refusal is one line
    /// naming the folder and the reason: `<path>: output folder: <reason>` ([`FOLDER_KEY`]).
    pub fn check(path: &Path, kind: Kind, force: bool) -> Result<Target, Error> {
        Self::check_as(path, kind, force, FOLDER_KEY)
    }

    /// [`Target::check`] for a folder given as `key` (the command line's `--out` or `DIR`: then
    /// the reasons name the `--force` flag).
    pub fn check_as(path: &Path, kind: Kind, force: bool, key: &'static str) -> Result<Target, Error> {
        let shown = path.display().to_string();
        let refuse = |why: String| -> Error { ConfigError::new(&shown, key, why).into() };
        let never = force_name(key);
        if path.as_os_str().is_empty() {
            return Err(refuse("is empty; give a folder name".into()));
        }
        if matches!(path.components().next_back(), Some(Component::CurDir | Component::ParentDir)) {
            return Err(refuse(format!("is '.' or '..' (never replaced, even with {never})")));
        }
        let abs = canonical(path).ok_or_else(|| refuse("cannot be resolved to an absolute path".into()))?;
        if abs.parent().is_none() {
            return Err(refuse(format!("is the root folder (never replaced, even with {never})")));
        }
        let home = std::env::var_os("HOME").and_then(|h| Path::new(&h).canonicalize().ok());
        if home.as_deref() == Some(abs.as_path()) {
            return Err(refuse(format!("is the home folder (never replaced, even with {never})")));
        }
        if let Ok(cwd) = std::env::current_dir().and_then(|c| c.canonicalize()) {
            if cwd.starts_with(&abs) {
                return Err(refuse(format!(
                    "is the current folder or contains it (never replaced, even with {never})"
                )));
            }
        }
        let target = Target { path: path.to_path_buf(), kind, force, key };
        target.check_contents()?;
        Ok(target)
    }

    /// The checks on what is at the path now (re-run just before it is replaced).
    fn check_contents(&self) -> Result<(), Error> {
        let (path, kind) = (&self.path, self.kind);
        let refuse =
            |why: String| -> Error { ConfigError::new(path.display().to_string(), self.key, why).into() };
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return Ok(());
        };
        if meta.file_type().is_symlink() {
            return Err(refuse("is a symbolic link; give the folder itself".into()));
        }
        if !meta.is_dir() {
            return Err(refuse("is an existing file, not a folder".into()));
        }
        if self.force {
            return Ok(());
        }
        let empty = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?.next().is_none();
        match marker_kind(path) {
            _ if empty => Ok(()),
            Some(k) if k == kind.name() => Ok(()),
            Some(k) => Err(refuse(format!(
                "holds the output of `advreact {k}`, not of `{}` (use {} to replace it)",
                kind.name(),
                force_name(self.key)
            ))),
            None => Err(refuse(format!(
                "holds files that are not an advreact {} output (no {MARKER}; use {} to replace it)",
                kind.name(),
                force_name(self.key)
            ))),
        }
    }

    /// The hidden folder the output is written into.
    pub fn partial(&self) -> PathBuf {
        partial_dir(&self.path)
    }

    /// Remove the hidden sibling `p` if it is ours (or empty); refuse to touch it otherwise.
    fn clear_sibling(&self, p: &Path) -> Result<(), Error> {
        if std::fs::symlink_metadata(p).is_err() {
            return Ok(());
        }
        let empty = std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !(empty || is_ours(p, self.kind)) {
            return Err(ConfigError::new(
                p.display().to_string(),
                self.key,
                format!(
                    "is in the way of writing {} and is not advreact output; remove it",
                    self.path.display()
                ),
            )
            .into());
        }
        std::fs::remove_dir_all(p).map_err(|e| Error::io(p, e))
    }

    /// Create a fresh partial folder with its marker (an older partial folder of ours is removed).
    pub fn begin(&self) -> Result<PathBuf, Error> {
        let tmp = self.partial();
        self.clear_sibling(&tmp)?;
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        write_marker(&tmp, self.kind)?;
        Ok(tmp)
    }

    /// Reopen a finished folder (an interrupted run) for writing: it becomes the partial folder
    /// again, and is put back in place by [`Target::commit`].
    pub fn reopen(&self) -> Result<PathBuf, Error> {
        let tmp = self.partial();
        self.clear_sibling(&tmp)?;
        std::fs::rename(&self.path, &tmp).map_err(|e| Error::io(&self.path, e))?;
        Ok(tmp)
    }

    /// Move the complete folder `tmp` into place: an older folder is renamed aside and removed
    /// only once the new one is in place.
    pub fn commit(&self, tmp: &Path) -> Result<(), Error> {
        let out = &self.path;
        self.check_contents()?;
        if !tmp.join(MARKER).exists() {
            write_marker(tmp, self.kind)?;
        }
        let old = sibling(out, "replaced");
        let had_old = std::fs::symlink_metadata(out).is_ok();
        if had_old {
            self.clear_sibling(&old)?;
            std::fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
        }
        if let Err(e) = std::fs::rename(tmp, out) {
            if had_old {
                let _ = std::fs::rename(&old, out);
            }
            return Err(Error::io(out, e));
        }
        if had_old {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        Ok(())
    }
}

/// Removes a partial folder on early exit, unless it holds a checkpoint to resume from or is
/// disarmed.
pub struct PartialGuard(Option<PathBuf>);

impl PartialGuard {
    /// Guard the partial folder `tmp`.
    pub fn new(tmp: &Path) -> Self {
        PartialGuard(Some(tmp.to_path_buf()))
    }

    /// Keep the folder: the command finished with it.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if !p.join(crate::observe::checkpoint::FILE).exists() {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

/// Write the output folder `out` of `kind` atomically: check it, let `fill` write into the
/// partial folder, then commit. On error nothing at `out` changes.
pub fn write_folder<T>(
    out: &Path,
    kind: Kind,
    force: bool,
    fill: impl FnOnce(&Path) -> Result<T, Error>,
) -> Result<T, Error> {
    let target = Target::check(out, kind, force)?;
    let tmp = target.begin()?;
    let guard = PartialGuard::new(&tmp);
    let v = fill(&tmp)?;
    target.commit(&tmp)?;
    guard.disarm();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_fixed_json_naming_the_kind() {
        assert_eq!(Kind::Uot.marker(), "{\"kind\":\"uot\",\"format\":1}\n");
        let v: serde_json::Value = serde_json::from_str(&Kind::Fates.marker()).unwrap();
        assert_eq!(v["kind"], "fates");
        assert_eq!(v["format"], 1);
    }

    #[test]
    fn commit_replaces_only_after_the_new_folder_is_complete() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("o");
        write_folder(&out, Kind::Infer, false, |d| {
            std::fs::write(d.join("a"), "1").map_err(|e| Error::io(d, e))
        })
        .unwrap();
        // A failing fill leaves the old folder byte-identical and no sibling behind.
        let e = write_folder(&out, Kind::Infer, false, |d| -> Result<(), Error> {
            std::fs::write(d.join("a"), "2").unwrap();
            Err(Error::io(d, std::io::Error::other("boom")))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "1");
        assert!(!partial_dir(&out).exists() && !sibling(&out, "replaced").exists());
        // Another kind is refused; the same kind replaces.
        let e = write_folder(&out, Kind::Uot, false, |_| Ok(())).unwrap_err().to_string();
        assert!(e.contains("output of `advreact infer`"), "{e}");
        write_folder(&out, Kind::Infer, false, |d| {
            std::fs::write(d.join("b"), "3").map_err(|e| Error::io(d, e))
        })
        .unwrap();
        assert!(!out.join("a").exists());
        assert_eq!(std::fs::read_to_string(out.join(MARKER)).unwrap(), Kind::Infer.marker());
    }
    /// A library caller's refusal names the folder, its role and the reason, and no command-line
    /// flag; the command line's `check_as(.., "--out")` keeps its flag words.
    #[test]
    fn library_refusals_name_no_flag() {
        let root = tempfile::tempdir().unwrap();
        let notes = root.path().join("notes");
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("mine.txt"), "x").unwrap();
        let shown = notes.display();
        let lib = Target::check(&notes, Kind::Run, false).unwrap_err().to_string();
        assert!(lib.starts_with(&format!("{shown}: output folder: holds files that are not")), "{lib}");
        assert!(
            lib.ends_with("(no .advreact-output; use force to replace it)") && !lib.contains("--"),
            "{lib}"
        );
        let cli = Target::check_as(&notes, Kind::Run, false, "--out").unwrap_err().to_string();
        assert!(
            cli.starts_with(&format!("{shown}: --out: ")) && cli.ends_with("use --force to replace it)"),
            "{cli}"
        );
        let dot = Target::check(Path::new("."), Kind::Run, true).unwrap_err().to_string();
        assert_eq!(dot, ".: output folder: is '.' or '..' (never replaced, even with force)");
    }
}
