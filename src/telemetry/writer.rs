//! The log's writer: the threads that decide append each formatted line to
//! a shared buffer, and one writer thread writes the buffer out in batches.
//!
//! A writer thread fed through a channel, one message per line, is woken
//! for nearly every line under load; on two cores those wake-ups and
//! context switches cost more CPU per Check than formatting the line. Here
//! the writer thread is woken by the first line after a write, then lets
//! the batch grow for [`LINGER`] (or until [`FLUSH_AT`] bytes) and writes
//! it with one call: a few hundred wake-ups a second whatever the rate.
//!
//! Nothing is dropped. When the output cannot keep up (a blocked pipe) and
//! the buffer holds [`MAX_BUFFER`] bytes, a thread with a line to add waits
//! for room, so decisions slow down instead of vanishing from the audit
//! trail. A line is appended whole, under the lock, so lines never mix.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets a batch grow after its first line.
pub const LINGER: Duration = Duration::from_millis(10);
/// Buffered bytes that make the writer write at once.
pub const FLUSH_AT: usize = 256 * 1024;
/// Buffered bytes at which appending waits for the writer.
pub const MAX_BUFFER: usize = 8 * 1024 * 1024;
/// How long shutdown waits for the last lines to be written: an output
/// that blocks (a stalled log collector) must not keep the process alive.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Hands out line writers; cheap to clone.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes what is buffered and stops the writer thread when dropped.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signals the writer: a first line, a full batch, or closing.
    wake: Condvar,
    /// Signals appenders waiting for room, and shutdown that the writer
    /// has finished.
    room: Condvar,
}

#[derive(Default)]
struct State {
    buffer: Vec<u8>,
    closed: bool,
    /// Set by the writer thread when it has written everything and stops.
    finished: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a buffer of whole lines.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.lock();
        while state.buffer.len() >= MAX_BUFFER && !state.closed {
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let first = state.buffer.is_empty();
        state.buffer.extend_from_slice(line);
        if first || state.buffer.len() >= FLUSH_AT {
            self.wake.notify_one();
        }
    }

    /// The writer thread: waits for a first line, lingers, writes.
    fn run(&self, mut out: impl Write) {
        let mut spare = Vec::new();
        let mut state = self.lock();
        loop {
            while state.buffer.is_empty() && !state.closed {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !state.closed && state.buffer.len() < FLUSH_AT {
                state = self
                    .wake
                    .wait_timeout(state, LINGER)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut state.buffer, &mut spare);
            let closed = state.closed;
            drop(state);
            self.room.notify_all();
            // Nowhere to report a failed log write; the next batch tries again.
            let _ = out.write_all(&spare).and_then(|()| out.flush());
            spare.clear();
            state = self.lock();
            if closed && state.buffer.is_empty() {
                state.finished = true;
                self.room.notify_all();
                return;
            }
        }
    }
}

impl BatchWriter {
    /// Starts the writer thread over `out`.
    pub fn spawn(out: impl Write + Send + 'static) -> io::Result<(Self, WriterGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            room: Condvar::new(),
        });
        let writer = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(out))?;
        let guard = WriterGuard {
            shared: Arc::clone(&shared),
            thread: Some(thread),
        };
        Ok((Self { shared }, guard))
    }
}

impl Drop for WriterGuard {
    /// Writes what is buffered, waiting at most [`SHUTDOWN_WAIT`].
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        let (state, _) = self
            .shared
            .room
            .wait_timeout_while(state, SHUTDOWN_WAIT, |s| !s.finished)
            .unwrap_or_else(PoisonError::into_inner);
        let finished = state.finished;
        drop(state);
        if let Some(thread) = self.thread.take().filter(|_| finished) {
            let _ = thread.join();
        }
    }
}

/// One formatted line on its way into the buffer.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.shared)
    }
}

#[cfg(test)]
mod tests;
