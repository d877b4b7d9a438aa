//! Which directories a job's parameters may name on a node (`security.files.allowed-dirs`).
//!
//! A job's parameters come from whoever submits it, but the files they name are read and
//! written by the JobManager and the TaskManagers, with those processes' rights. So each node
//! decides for itself: a path parameter (`sink=file:DIR`, `input=DIR`, or a user job's own,
//! through [`Params::path`](super::registry::Params::path)) must lie inside one of the
//! directories the node's own configuration allows. The key is under `security.`, so a job's
//! configuration can never set it (`Configuration::job_settings`).

use std::path::{Component, Path, PathBuf};

use crate::error::JobError;

/// The directories job parameters may name on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FileAccess {
    /// None (`none`, the default): a job that names a path is rejected.
    #[default]
    Nothing,
    /// Any path (`*`): for a cluster inside one's own process (`rill local`, tests), whose
    /// jobs come from the process itself.
    Anywhere,
    /// Paths inside these directories (absolute, symbolic links resolved where they exist).
    Within(Vec<PathBuf>),
}

impl FileAccess {
    /// Parses `none`, `*`, or a comma-separated list of absolute directories.
    pub fn parse(value: &str) -> Result<FileAccess, String> {
        match value.trim() {
            "none" => Ok(FileAccess::Nothing),
            "*" => Ok(FileAccess::Anywhere),
            list => {
                let dirs = list
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(|d| plain_absolute(Path::new(d)).map(|()| resolve(Path::new(d))))
                    .collect::<Result<Vec<_>, _>>()?;
                if dirs.is_empty() {
                    return Err("no directory given (write none to allow none)".into());
                }
                Ok(FileAccess::Within(dirs))
            }
        }
    }

    /// The path job parameter `param` names, if this node allows it: the path itself, with
    /// symbolic links resolved as far as it exists (so a link inside an allowed directory
    /// cannot lead out of it), or an error that says what the node allows.
    pub fn check(&self, param: &str, path: &Path) -> Result<PathBuf, JobError> {
        let refuse = |reason: String| JobError::InvalidParam {
            param: param.to_string(),
            reason,
        };
        let dirs = match self {
            FileAccess::Anywhere => return Ok(path.to_path_buf()),
            FileAccess::Nothing => {
                return Err(refuse(format!(
                    "{} names a path, and this node lets jobs name none (set {} on the \
                     JobManager and every TaskManager)",
                    path.display(),
                    crate::config::keys::ALLOWED_DIRS
                )))
            }
            FileAccess::Within(dirs) => dirs,
        };
        plain_absolute(path).map_err(refuse)?;
        let resolved = resolve(path);
        if dirs.iter().any(|d| resolved.starts_with(d)) {
            return Ok(resolved);
        }
        let allowed: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Err(refuse(format!(
            "{} is outside the directories this node allows ({}: {})",
            path.display(),
            crate::config::keys::ALLOWED_DIRS,
            allowed.join(", ")
        )))
    }
}

/// An absolute path without `..`: the only kind whose place can be judged before it exists.
fn plain_absolute(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{} contains '..'", path.display()));
    }
    Ok(())
}

/// `path` with its longest existing ancestor canonicalized and the rest appended: a sink's
/// directory may not exist yet, and the part that does may hold symbolic links.
fn resolve(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(mut real) = existing.canonicalize() {
            real.extend(missing.iter().rev());
            return real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn temp(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("rill-file-access-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("allowed")).unwrap();
        std::fs::create_dir_all(dir.join("secret")).unwrap();
        TempDir(dir.canonicalize().unwrap())
    }

    #[test]
    fn parses_none_any_and_lists() {
        assert_eq!(FileAccess::parse("none"), Ok(FileAccess::Nothing));
        assert_eq!(FileAccess::parse("*"), Ok(FileAccess::Anywhere));
        assert_eq!(
            FileAccess::parse("/nonexistent-a, /nonexistent-b"),
            Ok(FileAccess::Within(vec![
                PathBuf::from("/nonexistent-a"),
                PathBuf::from("/nonexistent-b")
            ]))
        );
        for bad in ["", " , ", "relative/dir", "/a/../b"] {
            assert!(FileAccess::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn nothing_refuses_every_path_and_anywhere_allows_it() {
        let err = FileAccess::Nothing
            .check("sink", Path::new("/tmp/out"))
            .unwrap_err();
        assert!(matches!(&err, JobError::InvalidParam { param, .. } if param == "sink"));
        assert!(
            err.to_string().contains("security.files.allowed-dirs"),
            "{err}"
        );
        assert_eq!(
            FileAccess::Anywhere.check("sink", Path::new("rel/x")),
            Ok(PathBuf::from("rel/x"))
        );
    }

    #[test]
    fn within_allows_paths_below_its_directories_only() {
        let t = temp("within");
        let access = FileAccess::parse(&t.0.join("allowed").display().to_string()).unwrap();
        let inside = t.0.join("allowed/job-1/out");
        assert_eq!(access.check("sink", &inside), Ok(inside.clone()));
        for outside in [
            t.0.join("secret"),
            t.0.join("allowed-not"),
            t.0.join("allowed/../secret"),
            PathBuf::from("allowed/x"),
            PathBuf::from("/etc"),
        ] {
            assert!(
                access.check("input", &outside).is_err(),
                "{} allowed",
                outside.display()
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_inside_an_allowed_directory_cannot_lead_out_of_it() {
        let t = temp("link");
        let link = t.0.join("allowed/escape");
        std::os::unix::fs::symlink(t.0.join("secret"), &link).unwrap();
        let access = FileAccess::Within(vec![t.0.join("allowed")]);
        assert!(access.check("sink", &link.join("out")).is_err());
        assert!(access.check("sink", &link).is_err());
    }
}
