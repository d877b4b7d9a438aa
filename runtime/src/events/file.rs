//! Cluster events as a file: how a real process hands its typed events to a harness that runs
//! it (`rill jobmanager --events PATH`, `rill taskmanager --events PATH`), the way the
//! simulator's recorder receives them in memory.
//!
//! The file is a sequence of frames, each a little-endian `u32` length and that many bytes of
//! bincode: a [`StampedEvent`]. A frame is written with one `write` call as the event is
//! emitted, so what a process emitted before a SIGKILL is in the file; a frame cut short (the
//! process died inside the call) ends the readable part and is reported, not misread.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ClusterEvent, EventSink, TracingEvents};

/// The largest frame an events file's reader accepts: far above any event, so a corrupt length
/// is refused at once.
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// The largest frame a journal's reader accepts: any length a frame can have, as a journaled
/// write or checkpoint is as large as the frame limit it came under allows (up to 4 GiB).
pub const JOURNAL_MAX_FRAME: usize = u32::MAX as usize;

/// One event with the wall-clock time its process emitted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampedEvent {
    /// Nanoseconds since the Unix epoch, by the emitting process's clock (processes on one
    /// machine share it; a harness on several machines must account for their offsets).
    pub unix_nanos: u64,
    /// The event.
    pub event: ClusterEvent,
}

/// Appends every event to a file, and logs it as [`TracingEvents`] does.
pub struct FileEvents {
    file: Mutex<FrameFile>,
}

impl FileEvents {
    /// Opens `path` for appending (creating it): a restarted process adds to what its previous
    /// incarnation wrote ([`FrameFile::open`]).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let (file, _) = FrameFile::open::<StampedEvent>(path, MAX_FRAME)?;
        Ok(FileEvents {
            file: Mutex::new(file),
        })
    }
}

/// An append-only file of frames that a restarted process reopens: an events file, a store's
/// journal. Each frame goes out with one `write` call, so what a process wrote before a
/// SIGKILL is in the file, whole or cut short.
pub struct FrameFile {
    file: File,
}

impl FrameFile {
    /// Opens `path` for appending (creating it), and decodes the frames it holds as `T`
    /// (none over `max_frame` bytes). A frame the previous writer was killed in the middle of
    /// is cut away first, so that what follows it stays readable. Damage of any other kind (a
    /// frame that does not decode, or is too large) is refused with an error rather than cut:
    /// what follows it may be whole, and is not thrown away.
    pub fn open<T: DeserializeOwned>(
        path: &Path,
        max_frame: usize,
    ) -> std::io::Result<(FrameFile, Frames<T>)> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes)?;
        let held = read_frames_up_to::<T>(&bytes, max_frame);
        match &held.damaged {
            Some(_) if held.torn => file.set_len(held.consumed as u64)?,
            Some(why) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {why} at byte {}", path.display(), held.consumed),
                ))
            }
            None => {}
        }
        Ok((FrameFile { file }, held))
    }

    /// Appends one frame ([`encode_frame`]). A small append to a local file: page cache, not
    /// a disk wait. A write that fails part way is cut back off, so that the file stays whole
    /// frames and the next append is readable.
    pub fn append(&mut self, frame: &[u8]) -> std::io::Result<()> {
        let before = self.file.metadata()?.len();
        let written = self.file.write_all(frame);
        if written.is_err() {
            let _ = self.file.set_len(before);
        }
        written
    }
}

impl EventSink for FileEvents {
    fn emit(&self, event: ClusterEvent) {
        let stamped = StampedEvent {
            unix_nanos: unix_nanos(),
            event,
        };
        match encode_frame(&stamped) {
            Ok(frame) => {
                let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = file.append(&frame) {
                    tracing::warn!(target: "rill::events", "events file write failed: {e}");
                }
            }
            Err(e) => tracing::warn!(target: "rill::events", "event not encodable: {e}"),
        }
        TracingEvents.emit(stamped.event);
    }
}

/// Now, in nanoseconds since the Unix epoch (0 before it): the clock events files and memory
/// samples are stamped with, which a harness on the same machine reads too.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One frame of a frames file: a little-endian `u32` length and that many bytes of bincode.
pub fn encode_frame<T: Serialize>(item: &T) -> Result<Vec<u8>, bincode::Error> {
    let body = bincode::serialize(item)?;
    if u32::try_from(body.len()).is_err() {
        return Err(Box::new(bincode::ErrorKind::SizeLimit));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// What a file of frames holds (an events file, a checkpoint store's journal).
#[derive(Debug)]
pub struct Frames<T> {
    /// Every whole frame, in file order.
    pub items: Vec<T>,
    /// The bytes those frames took: where a reader that follows a growing file goes on from.
    pub consumed: usize,
    /// Why reading stopped before the end of the bytes, if it did: a frame cut short (the
    /// writer was killed while writing it) or one that does not decode.
    pub damaged: Option<String>,
    /// Whether the damage is only a frame cut short at the end (what a writer killed while
    /// writing leaves), as opposed to a frame that does not decode or is too large.
    pub torn: bool,
}

/// Decodes the frames of an events file (none over 16 MiB).
pub fn read_frames<T: DeserializeOwned>(bytes: &[u8]) -> Frames<T> {
    read_frames_up_to(bytes, MAX_FRAME)
}

/// Decodes the frames of a file of frames, none over `max_frame` bytes.
pub fn read_frames_up_to<T: DeserializeOwned>(bytes: &[u8], max_frame: usize) -> Frames<T> {
    let mut out = Frames {
        items: Vec::new(),
        consumed: 0,
        damaged: None,
        torn: false,
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((len, body)) = rest.split_first_chunk::<4>() else {
            out.damaged = Some(format!("{} bytes of a cut-off frame length", rest.len()));
            out.torn = true;
            break;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > max_frame {
            out.damaged = Some(format!("a frame of {len} bytes (at most {max_frame})"));
            break;
        }
        if body.len() < len {
            out.damaged = Some(format!("a frame cut off at {} of {len} bytes", body.len()));
            out.torn = true;
            break;
        }
        match bincode::deserialize::<T>(&body[..len]) {
            Ok(item) => {
                out.items.push(item);
                out.consumed += 4 + len;
            }
            Err(e) => {
                out.damaged = Some(format!("a frame that does not decode: {e}"));
                break;
            }
        }
        rest = &body[len..];
    }
    out
}

/// What an events file holds.
pub type EventsFile = Frames<StampedEvent>;

/// Decodes the frames of an events file.
pub fn read_events(bytes: &[u8]) -> EventsFile {
    read_frames(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskManagerId;

    fn registered(name: &str) -> ClusterEvent {
        ClusterEvent::TaskManagerRegistered {
            taskmanager: name.into(),
            instance: TaskManagerId(7),
            slots: 2,
        }
    }

    #[test]
    fn events_round_trip_through_a_file_across_restarts() {
        let dir = std::env::temp_dir().join(format!("rill-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tm-1.events");
        let _ = std::fs::remove_file(&path);
        FileEvents::open(&path).unwrap().emit(registered("tm-1"));
        // A restarted process appends.
        FileEvents::open(&path).unwrap().emit(registered("tm-2"));
        // A third incarnation was killed inside a write: the next one cuts the half frame.
        let mut half = encode_frame(&StampedEvent {
            unix_nanos: 3,
            event: registered("tm-3"),
        })
        .unwrap();
        half.truncate(half.len() / 2);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&half)
            .unwrap();
        FileEvents::open(&path).unwrap().emit(registered("tm-4"));
        let read = read_events(&std::fs::read(&path).unwrap());
        assert_eq!(read.damaged, None);
        let names: Vec<_> = read.items.iter().map(|e| e.event.clone()).collect();
        assert_eq!(
            names,
            vec![registered("tm-1"), registered("tm-2"), registered("tm-4")]
        );
        assert!(read.items[0].unix_nanos <= read.items[1].unix_nanos);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cut_off_or_corrupt_frame_ends_the_readable_part_and_says_why() {
        let one = encode_frame(&StampedEvent {
            unix_nanos: 1,
            event: registered("tm-1"),
        })
        .unwrap();
        let mut bytes = one.clone();
        bytes.extend_from_slice(&one[..one.len() - 3]);
        let read = read_events(&bytes);
        assert_eq!(read.items.len(), 1);
        assert_eq!(read.consumed, one.len());
        assert!(read.damaged.unwrap().contains("cut off"));

        let mut huge = one.clone();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let read = read_events(&huge);
        assert_eq!(read.items.len(), 1);
        assert!(read.damaged.unwrap().contains("at most"));

        let mut garbage = one;
        garbage.extend_from_slice(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
        let read = read_events(&garbage);
        assert_eq!(read.items.len(), 1);
        assert!(read.damaged.unwrap().contains("does not decode"));
        assert!(
            !read.torn,
            "a frame that does not decode is not a torn tail"
        );
    }

    #[test]
    fn a_frame_file_cuts_a_torn_tail_but_refuses_other_damage() {
        let dir = std::env::temp_dir().join(format!("rill-frame-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("frames");
        let one = encode_frame(&StampedEvent {
            unix_nanos: 1,
            event: registered("tm-1"),
        })
        .unwrap();
        // A torn last frame is what a kill leaves: cut, and appending goes on after it.
        std::fs::write(&path, [&one[..], &one[..5]].concat()).unwrap();
        let (mut file, held) = FrameFile::open::<StampedEvent>(&path, MAX_FRAME).unwrap();
        assert_eq!((held.items.len(), held.torn), (1, true));
        file.append(&one).unwrap();
        assert_eq!(read_events(&std::fs::read(&path).unwrap()).items.len(), 2);
        // A frame that does not decode, with whole frames after it: not cut, refused.
        let damaged = [&one[..], &[3, 0, 0, 0, 0xff, 0xff, 0xff], &one[..]].concat();
        std::fs::write(&path, &damaged).unwrap();
        let refused = FrameFile::open::<StampedEvent>(&path, MAX_FRAME)
            .err()
            .unwrap();
        assert!(refused.to_string().contains("does not decode"), "{refused}");
        assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing was cut");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
