//! Placeholder replaced by the plots branch.
use std::path::Path;
pub fn plot_run(_dir: &Path) -> Result<(), std::io::Error> {
    Ok(())
}
