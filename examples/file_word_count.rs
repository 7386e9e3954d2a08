//! Counts the words of each new text file that appears in a directory.
//!
//! ```text
//! cargo run --release --example file_word_count -- /path/to/dir
//! ```
//!
//! then move files into the directory (`mv`, or write `.name.tmp` and rename it: a
//! file must appear whole). With no directory, a temporary one is made and a demo
//! writer drops a file into it every second.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use dstream::logging::BatchLogger;
use dstream::{StreamingConfig, StreamingContext};

#[derive(Parser)]
#[command(about = "Counts the words of new files in a directory, batch by batch")]
struct Args {
    /// The directory to watch. Without it, a demo directory is made and fed.
    directory: Option<PathBuf>,
    /// Batch interval in seconds.
    #[arg(long, default_value_t = 2.0)]
    batch_secs: f64,
    /// Stop after about this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();

    // Files already in the directory at start are not read, so the demo writer
    // starts after the context does.
    let demo_dir = match args.directory {
        Some(_) => None,
        None => Some(tempfile::tempdir()?),
    };
    let directory = match (&args.directory, &demo_dir) {
        (Some(directory), _) => directory.clone(),
        (None, demo) => demo
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default(),
    };
    check_directory(&directory)?;

    let ssc = StreamingContext::from_config(StreamingConfig {
        batch_interval: Duration::from_secs_f64(args.batch_secs),
        stop_on_signal: true, // Ctrl-C stops gracefully: what was read is counted first
        ..StreamingConfig::default()
    })?;
    let lines = ssc.text_file_stream(&directory);
    let word_counts = lines
        .flat_map_into(|line, words| words.extend(line.split(' ').map(String::from)))
        .map(|word| (word, 1))
        .reduce_by_key(|x, y| x + y);
    word_counts.pprint()?;

    ssc.add_listener(BatchLogger);
    ssc.start()?;
    if demo_dir.is_some() {
        println!(
            "No directory given: a demo writer drops a file into {} every second\n",
            directory.display()
        );
        let target = directory.clone();
        std::thread::spawn(move || write_demo_files(&target));
    }
    match args.seconds {
        Some(seconds) => {
            if !ssc.await_termination_or_timeout(Duration::from_secs(seconds))? {
                ssc.stop(true)?;
            }
        }
        None => ssc.await_termination()?,
    }
    Ok(())
}

/// Checks the directory to watch before starting, so that a typo or a directory not
/// made yet gets advice rather than a bare I/O error.
fn check_directory(directory: &Path) -> anyhow::Result<()> {
    let shown = directory.display();
    match std::fs::metadata(directory) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => bail!(
            "{shown} is not a directory: give the directory to watch, or run without DIR \
             to watch a demo directory that a writer fills every second"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the directory {shown} does not exist: create it first (mkdir -p {shown}) and \
             move files into it while this runs, or run without DIR to watch a demo \
             directory that a writer fills every second"
        ),
        Err(e) => bail!("cannot watch {shown}: {e}"),
    }
}

/// Writes a small file every second, atomically: under a hidden name, then renamed.
fn write_demo_files(directory: &Path) {
    for n in 1.. {
        let hidden = directory.join(format!(".file-{n}.tmp"));
        let text = format!("the quick brown fox\njumps over the lazy dog\nfile {n}\n");
        let written = std::fs::write(&hidden, text)
            .and_then(|()| std::fs::rename(&hidden, directory.join(format!("file-{n}.txt"))));
        if written.is_err() {
            return; // the directory is gone: the example is over
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_named_with_what_to_do() {
        let parent = tempfile::tempdir().unwrap();
        let missing = parent.path().join("incoming");
        let message = check_directory(&missing).unwrap_err().to_string();
        let shown = missing.display().to_string();
        assert!(
            message.starts_with(&format!("the directory {shown} does not exist")),
            "{message}"
        );
        assert!(message.contains(&format!("mkdir -p {shown}")), "{message}");
        assert!(message.contains("run without DIR"), "{message}");

        let file = parent.path().join("file.txt");
        std::fs::write(&file, "text").unwrap();
        let message = check_directory(&file).unwrap_err().to_string();
        assert!(message.contains("is not a directory"), "{message}");
        assert!(check_directory(parent.path()).is_ok());
    }
}
