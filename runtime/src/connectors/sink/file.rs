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
//! - Attempts are fenced: each attempt leaves a marker `DIR/.staging/<sink>-<subtask>.attempt.<N>`
//!   when it opens, refuses to open behind a newer one, and, checking before every file it
//!   publishes, publishes nothing once a newer one has opened (a zombie of a replaced attempt
//!   cannot publish). Publishing is a hard link, so it never replaces a published file.
//! - The end-of-input commit publishes `<sink>-<subtask>-end.txt`; an attempt that finds it
//!   (when it opens, or before publishing a file) writes nothing more, as the sink store does.
//! - A run's first attempt refuses a directory that holds files of the same sink subtask: an
//!   earlier run's output (job ids start again with every JobManager), to be moved away.
//!
//! What a file system cannot do is compare and publish in one step: between an attempt's
//! check of the markers and its link, a newer attempt can open. The window is one link wide,
//! and both attempts publish the same checkpoint's records only if both restored the same
//! checkpoint and the older one committed a checkpoint the newer one replays: the JobManager
//! never completes a checkpoint with a replaced attempt's acknowledgement, so that needs an
//! end-of-input commit racing the takeover. Stores with transactions (the sink store) fence in
//! one step.
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
        // The first attempt of a run that restores nothing must find the directory free of
        // this subtask's files: they would be another run's (job ids and attempt numbers
        // start again with every JobManager), which this run must neither extend nor skip.
        if sink.attempt == 0 && ctx.restored_checkpoint().is_none() {
            sink.refuse_another_runs_files()?;
        }
        sink.take_over()?;
        sink.complete = sink.end_published();
        Ok(sink)
    }

    fn staging(&self) -> PathBuf {
        self.dir.join(STAGING)
    }

    /// The names of this subtask's files in `dir` that start with `prefix` + `rest`.
    fn files(&self, dir: &Path, rest: &str) -> Result<Vec<String>, JobError> {
        let mine = format!("{}{rest}", self.prefix);
        let entries = fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, e))?;
        Ok(entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&mine))
            .collect())
    }

    fn refuse_another_runs_files(&self) -> Result<(), JobError> {
        let published = self.files(&self.dir, "-")?;
        let fences = self.files(&self.staging(), ".attempt.")?;
        match published.first().or(fences.first()) {
            None => Ok(()),
            Some(file) => Err(JobError::Sink(format!(
                "file sink: {} already holds {file}, output of an earlier run of sink subtask {}: write a new run into an empty directory",
                self.dir.display(),
                self.prefix
            ))),
        }
    }

    /// The newest attempt that took this subtask over: each attempt leaves a marker
    /// (`<prefix>.attempt.<N>`), created once and never rewritten, so the newest cannot be
    /// overwritten by an older one however their openings interleave.
    fn current_attempt(&self) -> Result<Option<u32>, JobError> {
        let markers = self.files(&self.staging(), ".attempt.")?;
        Ok(markers
            .iter()
            .filter_map(|m| m.rsplit('.').next()?.parse().ok())
            .max())
    }

    /// Leaves this attempt's marker, unless a newer attempt already took over.
    fn take_over(&mut self) -> Result<(), JobError> {
        if let Some(current) = self.current_attempt()?.filter(|c| *c > self.attempt) {
            return Err(self.replaced_by(current));
        }
        let marker = self
            .staging()
            .join(format!("{}.attempt.{}", self.prefix, self.attempt));
        let created = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&marker);
        created.map_err(|e| io_error("cannot create", &marker, e))?;
        self.sync_dir(&self.staging())
    }

    fn replaced_by(&self, current: u32) -> JobError {
        JobError::Sink(format!(
            "file sink {}: attempt {} was replaced by attempt {current}",
            self.prefix, self.attempt
        ))
    }

    fn published(&self, checkpoint: CheckpointId) -> String {
        match checkpoint {
            CheckpointId::END_OF_INPUT => format!("{}-end.txt", self.prefix),
            CheckpointId(n) => format!("{}-cp{n}.txt", self.prefix),
        }
    }

    fn end_published(&self) -> bool {
        self.dir
            .join(self.published(CheckpointId::END_OF_INPUT))
            .exists()
    }

    fn in_progress_path(&self) -> PathBuf {
        self.staging()
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

    /// Publishes one staged file, unless it already was. A hard link, not a rename: it never
    /// replaces a file already published under that name (a zombie's end-of-input file
    /// stays the one there is).
    fn publish(&self, c: &FileCommittable) -> Result<(), JobError> {
        let staged = self.staging().join(&c.staged);
        let published = self.dir.join(&c.published);
        match fs::hard_link(&staged, &published) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) if !staged.exists() && published.exists() => return Ok(()),
            Err(e) => return Err(io_error("cannot publish", &staged, e)),
        }
        fs::remove_file(&staged).map_err(|e| io_error("cannot delete", &staged, e))
    }

    /// Deletes every staged and in-progress file of this subtask: on restore, what earlier
    /// attempts wrote that no restored committable names.
    fn abort_lingering(&self) -> Result<(), JobError> {
        for name in self.files(&self.staging(), "-a")? {
            let path = self.staging().join(name);
            fs::remove_file(&path).map_err(|e| io_error("cannot delete", &path, e))?;
        }
        Ok(())
    }

    /// Whether this attempt may no longer publish: a newer attempt took over (this one is a
    /// zombie, and stops), or the subtask's output became complete meanwhile (a zombie of an
    /// earlier attempt reached the end of the input first). A marker that went missing, or
    /// only older ones, is an error: the fence cannot be trusted.
    fn may_not_publish(&mut self) -> Result<bool, JobError> {
        if self.fenced || self.complete {
            return Ok(true);
        }
        match self.current_attempt()? {
            Some(current) if current > self.attempt => {
                tracing::warn!(sink = %self.prefix, attempt = self.attempt, current, "file sink fenced: a newer attempt took over");
                self.fenced = true;
            }
            Some(current) if current == self.attempt => self.complete = self.end_published(),
            _ => {
                return Err(JobError::Sink(format!(
                    "file sink {}: the marker of attempt {} is gone from {}",
                    self.prefix,
                    self.attempt,
                    self.staging().display()
                )))
            }
        }
        Ok(self.fenced || self.complete)
    }

    /// Makes renames and new files in `dir` durable: a crash must not lose a publish.
    fn sync_dir(&self, dir: &Path) -> Result<(), JobError> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("cannot sync", dir, e))
    }
}

impl<T: std::fmt::Debug + Send> SinkWriter<T, FileCommittable> for FileSink {
    fn recover(&mut self, restored: Vec<FileCommittable>) -> Result<(), JobError> {
        if !self.complete {
            for c in &restored {
                self.publish(c)?;
            }
            self.sync_dir(&self.dir)?;
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
        if self.may_not_publish()? {
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
        let target = self.staging().join(&staged);
        fs::rename(&path, &target).map_err(|e| io_error("cannot stage", &path, e))?;
        self.sync_dir(&self.staging())?;
        Ok(vec![FileCommittable { staged, published }])
    }

    fn commit(&mut self, committables: Vec<FileCommittable>) -> Result<(), JobError> {
        // Checked before every file, not once: another attempt may take over, or finish,
        // between two of them.
        for c in &committables {
            if self.may_not_publish()? {
                return Ok(());
            }
            self.publish(c)?;
        }
        self.sync_dir(&self.dir)
    }
}
