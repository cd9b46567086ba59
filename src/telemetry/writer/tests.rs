use std::sync::mpsc;
use std::time::Instant;

use super::*;

/// An output that tests can read while the writer writes to it.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn line(writer: &BatchWriter, text: &str) {
    writer.make_writer().write_all(text.as_bytes()).unwrap();
}

#[test]
fn every_line_from_every_thread_arrives_whole() {
    let sink = Sink::default();
    let (writer, guard) = BatchWriter::spawn(sink.clone()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    line(
                        &writer,
                        &format!("thread {t} line {i} {}\n", "x".repeat(i % 50)),
                    );
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    drop(guard);
    let text = sink.text();
    assert_eq!(text.lines().count(), 20_000);
    for t in 0..4 {
        let mine: Vec<usize> = text
            .lines()
            .filter(|l| l.starts_with(&format!("thread {t} ")))
            .map(|l| l.split(' ').nth(3).unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            mine,
            (0..5_000).collect::<Vec<_>>(),
            "thread {t} in order, none lost"
        );
    }
}

#[test]
fn a_lone_line_is_written_without_waiting_for_more() {
    let sink = Sink::default();
    let (writer, _guard) = BatchWriter::spawn(sink.clone()).unwrap();
    line(&writer, "only line\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.text().is_empty() {
        assert!(Instant::now() < deadline, "the line was never written");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(sink.text(), "only line\n");
}

/// An output that blocks every write until the test lets it go.
struct Gate(mpsc::Receiver<()>, Sink);

impl Write for Gate {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let _ = self.0.recv();
        self.1.write(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_blocked_output_makes_appenders_wait_not_drop() {
    let sink = Sink::default();
    let (open, gate) = mpsc::channel();
    let (writer, guard) = BatchWriter::spawn(Gate(gate, sink.clone())).unwrap();
    let chunk = "y".repeat(64 * 1024) + "\n";
    let lines = MAX_BUFFER / chunk.len() * 3;
    let (done_tx, done) = mpsc::channel();
    let appender = std::thread::spawn(move || {
        for _ in 0..lines {
            line(&writer, &chunk);
        }
        done_tx.send(()).unwrap();
    });
    // The output takes nothing, so the appender must be held back.
    assert!(done.recv_timeout(Duration::from_millis(300)).is_err());
    // Let every write through; the appender finishes and nothing is lost.
    std::thread::spawn(move || while open.send(()).is_ok() {});
    done.recv_timeout(Duration::from_secs(30)).unwrap();
    appender.join().unwrap();
    drop(guard);
    assert_eq!(sink.text().lines().count(), lines);
}

#[test]
fn shutdown_gives_up_on_an_output_that_never_takes_anything() {
    let sink = Sink::default();
    let (_never_opened, gate) = mpsc::channel::<()>();
    let (writer, guard) = BatchWriter::spawn(Gate(gate, sink)).unwrap();
    line(&writer, "stuck\n");
    std::thread::sleep(LINGER * 3);
    let started = Instant::now();
    drop(guard);
    let took = started.elapsed();
    assert!(
        took >= SHUTDOWN_WAIT && took < SHUTDOWN_WAIT * 3,
        "{took:?}"
    );
}
