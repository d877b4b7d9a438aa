//! The exactly-once file sink (`sink=file:DIR`): each sink subtask writes its records (their
//! Debug form, a line each) to an in-progress file under `DIR/.staging/`, renames it to a
//! staged file at each checkpoint barrier (the pre-commit; its name is the committable), and
//! publishes it into `DIR` by rename when the checkpoint completes. Only published files are
//! output: `cat DIR/*.txt` never shows a record twice or one a checkpoint did not cover.
//!
//! - A commit is idempotent: a staged file already published (a restored attempt commits
//!   again) is found under its published name.
//! - A restored attempt publishes the restored committables, then deletes every other
//!   staged or in-progress file of its subtask: what earlier attempts wrote after the
//!   checkpoint is replayed by this one.
//! - Attempts are fenced: each attempt records its number in `DIR/.staging/<sink>-<subtask>.attempt`
//!   when it opens, refuses to open behind a newer one, and publishes nothing once a newer
//!   one has opened (a zombie of a replaced attempt cannot publish).
//! - The end-of-input commit publishes `<sink>-<subtask>-end.txt`; a later attempt finds it
//!   and writes nothing, as the sink store does.
//!
//! It uses `std::fs`, blocking: a rename and an fsync per checkpoint, writes through a
//! buffer. Real-tokio deployments only: under the simulator the harness uses the collecting
//! sinks.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SinkWriter;
use crate::connectors::ConnectorContext;
use crate::error::JobError;
use crate::ids::CheckpointId;

const STAGING: &str = ".staging";

/// A staged file and the name it is published under, both relative to the sink's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCommittable {
    /// The staged file's name in `.staging/`.
    pub staged: String,
    /// The name it is published under in the sink's directory.
    pub published: String,
}

/// The writer of one file sink subtask.
pub struct FileSink {
    dir: PathBuf,
    /// `<sink>-<subtask>`: what every file of this subtask starts with.
    prefix: String,
    attempt: u32,
    /// The file records go to until the next barrier, opened at the first record.
    in_progress: Option<BufWriter<File>>,
    /// The subtask's end-of-input commit was published (by this or an earlier attempt).
    complete: bool,
    /// A newer attempt has opened: this one publishes nothing more.
    fenced: bool,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> JobError {
    JobError::Sink(format!("file sink: {what} {}: {e}", path.display()))
}

impl FileSink {
    /// Opens the subtask `ctx` describes under `dir`, fencing older attempts.
    pub fn open(dir: &Path, ctx: &dyn ConnectorContext) -> Result<Self, JobError> {
        let staging = dir.join(STAGING);
        fs::create_dir_all(&staging).map_err(|e| io_error("cannot create", &staging, e))?;
        let name: String = ctx
            .operator_name()
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '_' })
            .collect();
        let mut sink = FileSink {
            dir: dir.to_path_buf(),
            prefix: format!("{name}-{}", ctx.subtask()),
            attempt: ctx.attempt().attempt,
            in_progress: None,
            complete: false,
            fenced: false,
        };
        sink.take_over()?;
        sink.complete = sink
            .dir
            .join(sink.published(CheckpointId::END_OF_INPUT))
            .exists();
        Ok(sink)
    }

    fn fence_path(&self) -> PathBuf {
        self.dir
            .join(STAGING)
            .join(format!("{}.attempt", self.prefix))
    }

    /// The attempt that last took this subtask over, if any did.
    fn current_attempt(&self) -> Result<Option<u32>, JobError> {
        let path = self.fence_path();
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                JobError::Sink(format!(
                    "file sink: {} is not an attempt number",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot read", &path, e)),
        }
    }

    /// Records this attempt as the subtask's writer, unless a newer one already is.
    fn take_over(&mut self) -> Result<(), JobError> {
        if let Some(current) = self.current_attempt()?.filter(|c| *c > self.attempt) {
            return Err(JobError::Sink(format!(
                "file sink {}: attempt {} was replaced by attempt {current}",
                self.prefix, self.attempt
            )));
        }
        let path = self.fence_path();
        let tmp = path.with_extension(format!("attempt.{}", self.attempt));
        fs::write(&tmp, self.attempt.to_string()).map_err(|e| io_error("cannot write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_error("cannot write", &path, e))
    }

    fn published(&self, checkpoint: CheckpointId) -> String {
        match checkpoint {
            CheckpointId::END_OF_INPUT => format!("{}-end.txt", self.prefix),
            CheckpointId(n) => format!("{}-cp{n}.txt", self.prefix),
        }
    }

    fn in_progress_path(&self) -> PathBuf {
        self.dir
            .join(STAGING)
            .join(format!("{}-a{}.inprogress", self.prefix, self.attempt))
    }

    fn in_progress(&mut self) -> Result<&mut BufWriter<File>, JobError> {
        if self.in_progress.is_none() {
            let path = self.in_progress_path();
            let file = File::create(&path).map_err(|e| io_error("cannot create", &path, e))?;
            self.in_progress = Some(BufWriter::new(file));
        }
        Ok(self.in_progress.as_mut().expect("just opened"))
    }

    /// Publishes one staged file, unless it already was.
    fn publish(&self, c: &FileCommittable) -> Result<(), JobError> {
        let staged = self.dir.join(STAGING).join(&c.staged);
        let published = self.dir.join(&c.published);
        match fs::rename(&staged, &published) {
            Ok(()) => Ok(()),
            Err(_) if published.exists() => Ok(()),
            Err(e) => Err(io_error("cannot publish", &staged, e)),
        }
    }

    /// Deletes every staged and in-progress file of this subtask: on restore, what earlier
    /// attempts wrote that no restored committable names.
    fn abort_lingering(&self) -> Result<(), JobError> {
        let staging = self.dir.join(STAGING);
        let mine = format!("{}-a", self.prefix);
        let entries = fs::read_dir(&staging).map_err(|e| io_error("cannot list", &staging, e))?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&mine) {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| io_error("cannot delete", &path, e))?;
            }
        }
        Ok(())
    }

    /// Whether a newer attempt has taken over since this one opened.
    fn replaced(&mut self) -> Result<bool, JobError> {
        if !self.fenced && self.current_attempt()? != Some(self.attempt) {
            tracing::warn!(sink = %self.prefix, attempt = self.attempt, "file sink fenced: a newer attempt took over");
            self.fenced = true;
        }
        Ok(self.fenced)
    }
}

impl<T: std::fmt::Debug + Send> SinkWriter<T, FileCommittable> for FileSink {
    fn recover(&mut self, restored: Vec<FileCommittable>) -> Result<(), JobError> {
        for c in &restored {
            self.publish(c)?;
        }
        self.abort_lingering()
    }

    fn write(&mut self, record: T) -> Result<(), JobError> {
        if self.complete || self.fenced {
            return Ok(());
        }
        let path = self.in_progress_path();
        writeln!(self.in_progress()?, "{record:?}").map_err(|e| io_error("cannot write", &path, e))
    }

    fn flush(&mut self) -> Result<(), JobError> {
        let path = self.in_progress_path();
        match &mut self.in_progress {
            Some(out) => out.flush().map_err(|e| io_error("cannot write", &path, e)),
            None => Ok(()),
        }
    }

    fn prepare_commit(
        &mut self,
        checkpoint: CheckpointId,
    ) -> Result<Vec<FileCommittable>, JobError> {
        if self.complete || self.replaced()? {
            return Ok(Vec::new());
        }
        // The end of the input is published even when empty: that marks the subtask complete.
        if checkpoint == CheckpointId::END_OF_INPUT {
            self.in_progress()?;
        }
        let Some(out) = self.in_progress.take() else {
            return Ok(Vec::new());
        };
        let path = self.in_progress_path();
        let file = out
            .into_inner()
            .map_err(|e| io_error("cannot write", &path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_error("cannot sync", &path, e))?;
        let published = self.published(checkpoint);
        let staged = format!("{}-a{}-{published}", self.prefix, self.attempt);
        let target = self.dir.join(STAGING).join(&staged);
        fs::rename(&path, &target).map_err(|e| io_error("cannot stage", &path, e))?;
        Ok(vec![FileCommittable { staged, published }])
    }

    fn commit(&mut self, committables: Vec<FileCommittable>) -> Result<(), JobError> {
        if self.replaced()? {
            return Ok(());
        }
        for c in &committables {
            self.publish(c)?;
        }
        Ok(())
    }
}
