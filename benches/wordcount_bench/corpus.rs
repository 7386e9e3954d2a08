//! The benchmark's input: a text file, or a corpus generated in memory with the same
//! shape as the harness's (`gen_corpus.py`), and the ways of feeding it to a stream.
//!
//! The generator draws words `w<rank>`, rank 1..=100,000 with P(rank) ~ 1/rank (Zipf,
//! s = 1), 5 to 15 words per line, single spaces, `\n` line ends, from a fixed seed:
//! every run of the same size gives the same bytes. It is not byte-for-byte the
//! harness's corpus (Python's random generator is not reproduced), but it has the same
//! distribution, so figures on either are comparable.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, ensure};

// The generator the criterion benchmarks draw their data from.
#[allow(dead_code)] // criterion's settings live there too
#[path = "../common/mod.rs"]
mod bench_common;
use bench_common::SplitMix;

/// Distinct words the generator draws from.
pub const VOCABULARY: usize = 100_000;

/// The corpus in memory, with its totals.
pub struct Corpus {
    pub text: Vec<u8>,
    pub words: u64,
    pub distinct: u64,
    /// Where it came from, for the `RESULT` line.
    pub origin: String,
}

impl Corpus {
    /// Reads a text file and counts its words (split on single spaces, as the
    /// pipeline does) and distinct words.
    pub fn read(path: &Path) -> anyhow::Result<Corpus> {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let body = std::str::from_utf8(&text)
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        let mut distinct = std::collections::HashSet::new();
        let mut words = 0;
        for line in body.lines() {
            for word in line.split(' ') {
                words += 1;
                distinct.insert(word);
            }
        }
        let distinct = distinct.len() as u64;
        Ok(Corpus {
            text,
            words,
            distinct,
            origin: path.display().to_string(),
        })
    }

    /// Generates `lines` lines from `seed`.
    pub fn generate(lines: u64, seed: u64) -> Corpus {
        let mut rng = SplitMix(seed);
        let zipf = Zipf::new(VOCABULARY);
        let mut seen = vec![false; VOCABULARY + 1];
        let mut text = Vec::with_capacity(lines as usize * 60);
        let mut words = 0;
        for _ in 0..lines {
            let count = 5 + rng.below(11);
            for i in 0..count {
                if i > 0 {
                    text.push(b' ');
                }
                let rank = zipf.sample(&mut rng);
                seen[rank] = true;
                write!(text, "w{rank}").expect("writing to a Vec cannot fail");
            }
            text.push(b'\n');
            words += count;
        }
        Corpus {
            text,
            words,
            distinct: seen.iter().filter(|&&s| s).count() as u64,
            origin: format!("generated:{lines}:seed{seed}"),
        }
    }

    /// The lines, each as a `String`.
    pub fn line_strings(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.text)
            .lines()
            .map(String::from)
            .collect()
    }

    /// Writes the corpus as `parts` files of whole lines into `dir`, named in order.
    pub fn write_parts(&self, dir: &Path, parts: usize) -> anyhow::Result<()> {
        ensure!(parts > 0, "parts must be positive");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let per_part = self.text.len().div_ceil(parts).max(1);
        let (mut start, mut index) = (0, 0);
        while start < self.text.len() {
            let mut end = (start + per_part).min(self.text.len());
            while end < self.text.len() && self.text[end - 1] != b'\n' {
                end += 1;
            }
            let path = dir.join(format!("part-{index:05}.txt"));
            std::fs::write(&path, &self.text[start..end])
                .with_context(|| format!("cannot write {}", path.display()))?;
            (start, index) = (end, index + 1);
        }
        Ok(())
    }
}

/// Zipf (s = 1) ranks by inverse transform over the cumulative weights.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(ranks: usize) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=ranks)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Zipf { cumulative }
    }

    /// A rank in `1..=ranks`.
    fn sample(&self, rng: &mut SplitMix) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.cumulative.len() - 1)
            + 1
    }
}

/// What `nc -lk 127.0.0.1 PORT < corpus` does: the first client gets the whole corpus
/// as fast as it reads, and the connection stays open afterwards; later clients get
/// nothing. Runs on a thread of its own until dropped.
pub struct CorpusServer {
    address: SocketAddr,
    stopped: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CorpusServer {
    pub fn start(text: Arc<Vec<u8>>) -> anyhow::Result<CorpusServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot listen on loopback")?;
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let thread = std::thread::Builder::new()
            .name("corpus-server".into())
            .spawn(move || serve(&listener, &text, &flag))?;
        Ok(CorpusServer {
            address,
            stopped,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }
}

fn serve(listener: &TcpListener, text: &[u8], stopped: &AtomicBool) {
    let mut served = false;
    let mut open = Vec::new();
    while !stopped.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                if !served {
                    served = true;
                    let _ = stream.set_nonblocking(false);
                    if let Err(e) = stream.write_all(text) {
                        eprintln!("corpus server: {e}");
                    }
                }
                open.push(stream);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

impl Drop for CorpusServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A temporary directory the benchmark made, removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> anyhow::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_corpus_has_the_harness_shape() {
        let corpus = Corpus::generate(20_000, 42);
        assert_eq!(corpus.text, Corpus::generate(20_000, 42).text);
        let text = std::str::from_utf8(&corpus.text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        let words: u64 = lines.iter().map(|l| l.split(' ').count() as u64).sum();
        assert_eq!(words, corpus.words);
        assert!(
            lines
                .iter()
                .all(|l| (5..=15).contains(&l.split(' ').count()))
        );
        // Zipf with s = 1 over 100k ranks: w1 is about 8% of all words.
        let w1 = text.split([' ', '\n']).filter(|w| *w == "w1").count() as f64;
        let share = w1 / words as f64;
        assert!((0.07..0.09).contains(&share), "w1 share {share}");
    }
}
