//! Output operations: what runs for each batch. They run in the order they were
//! registered, one after the other, each on the context's thread pool.

use std::fmt::{Debug, Display, Write as _};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;

use super::{DStream, GraphNode, Job, StreamNode};
use crate::checkpoint::sync_directory;
use crate::error::{Cause, Error, Result};
use crate::rdd::{Data, Rdd};
use crate::time::Time;

/// The line between pprint blocks: 43 dashes, as PySpark prints.
const DASHES: &str = "-------------------------------------------";

/// What a [`foreach_rdd`](DStream::foreach_rdd) function may return: nothing, or a
/// `Result` whose error fails the batch. The error is kept whole, as the
/// [`Error::BatchFailed`](crate::Error::BatchFailed) `cause`: any `std::error::Error`,
/// a `String` or `&str`, an `anyhow::Error`.
pub trait OutputResult {
    /// `Err` with the error when the batch should fail.
    fn into_outcome(self) -> std::result::Result<(), Cause>;
}

impl OutputResult for () {
    fn into_outcome(self) -> std::result::Result<(), Cause> {
        Ok(())
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> OutputResult
    for std::result::Result<(), E>
{
    fn into_outcome(self) -> std::result::Result<(), Cause> {
        self.map_err(|e| Cause::from(e.into()))
    }
}

/// An output operation as the scheduler sees it.
pub(crate) trait OutputOperation: Send + Sync + 'static {
    /// For messages: `pprint of #3 reduce_by_key`.
    fn describe(&self) -> String;

    /// The stream it reads.
    fn stream(&self) -> Arc<dyn GraphNode>;

    /// The work for the batch at `time`, if the stream has an `Rdd` then.
    fn job(&self, time: Time) -> Option<Job>;
}

type OutputFn<T> = dyn Fn(Rdd<T>, Time) -> std::result::Result<(), Cause> + Send + Sync;

/// Calls a function with each batch's `Rdd`: every output operation is one of these.
struct ForEachRdd<T> {
    kind: &'static str,
    node: Arc<StreamNode<T>>,
    f: Arc<OutputFn<T>>,
}

impl<T: Data> OutputOperation for ForEachRdd<T> {
    fn describe(&self) -> String {
        use super::GraphNode as _;
        format!("{} of {}", self.kind, self.node.meta().describe())
    }

    fn stream(&self) -> Arc<dyn GraphNode> {
        self.node.clone()
    }

    fn job(&self, time: Time) -> Option<Job> {
        let rdd = self.node.get_or_compute(time)?;
        let f = self.f.clone();
        Some(Box::new(move || f(rdd, time)))
    }
}

impl<T: Data> DStream<T> {
    pub(crate) fn register_output<R: OutputResult>(
        &self,
        kind: &'static str,
        f: impl Fn(Rdd<T>, Time) -> R + Send + Sync + 'static,
    ) -> Result<()> {
        self.registry().register_output(
            kind,
            Arc::new(ForEachRdd {
                kind,
                node: self.node().clone(),
                f: Arc::new(move |rdd, time| f(rdd, time).into_outcome()),
            }),
        )
    }

    /// Calls `f` with each batch's `Rdd` and batch time: the general output
    /// operation. `f` may return `()` or a `Result`; an `Err` or a panic fails the
    /// batch, and the context stops with that error.
    ///
    /// Keeping the `Rdd` beyond the call is allowed, but it keeps the batch's data in
    /// memory (and makes state updates copy instead of updating in place).
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let counts = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// counts.foreach_rdd(|rdd, time| {
    ///     rdd.foreach_partition(|partition| {
    ///         // one connection per partition, as in the Spark guide
    ///         for (word, count) in partition {
    ///             let _ = (word, count, time);
    ///         }
    ///     });
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn foreach_rdd<R: OutputResult>(
        &self,
        f: impl Fn(Rdd<T>, Time) -> R + Send + Sync + 'static,
    ) -> Result<()> {
        self.register_output("foreach_rdd", f)
    }

    /// Saves each batch as a directory `prefix-<batch time in ms>[.suffix]` holding one
    /// file per partition (`part-00000`, ...), one element per line. Each directory is
    /// written under a hidden temporary name and renamed into place, so a reader never
    /// sees half a batch. An empty `suffix` adds no extension.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let counts = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// counts
    ///     .map(|(word, count)| format!("{word},{count}"))
    ///     .save_as_text_files("output/counts", "csv")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_as_text_files(
        &self,
        prefix: impl Into<String>,
        suffix: impl Into<String>,
    ) -> Result<()>
    where
        T: Display,
    {
        let (prefix, suffix) = (prefix.into(), suffix.into());
        self.register_output("save_as_text_files", move |rdd, time| {
            let dir = batch_directory(&prefix, &suffix, time);
            save_partitions(&rdd, &dir)
        })
    }

    /// [`save_as_text_files`](Self::save_as_text_files) for elements of any type, each
    /// written as the line `format` makes of it (for example
    /// `|e| format!("{e:?}")`, the form `pprint` prints).
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let counts = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// counts.save_as_text_files_with("output/counts", "tsv", |(word, count)| {
    ///     format!("{word}\t{count}")
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_as_text_files_with(
        &self,
        prefix: impl Into<String>,
        suffix: impl Into<String>,
        format: impl Fn(&T) -> String + Send + Sync + 'static,
    ) -> Result<()> {
        let (prefix, suffix) = (prefix.into(), suffix.into());
        let format = Arc::new(format);
        self.register_output("save_as_text_files", move |rdd, time| {
            let dir = batch_directory(&prefix, &suffix, time);
            let format = format.clone();
            let lines = rdd.map(move |element| format(&element));
            save_partitions(&lines, &dir)
        })
    }
}

impl<T: Data + Debug> DStream<T> {
    /// Prints the first ten elements of each batch, as PySpark's `pprint`.
    ///
    /// ```text
    /// -------------------------------------------
    /// Time: 2024-04-30 04:05:40
    /// -------------------------------------------
    /// ("line", 10)
    /// ("This", 10)
    ///
    /// ```
    pub fn pprint(&self) -> Result<()> {
        self.pprint_n(10)
    }

    /// Prints the first `n` elements of each batch, and `...` if there are more.
    pub fn pprint_n(&self, n: usize) -> Result<()> {
        self.pprint_to(n, std::io::stdout())
    }

    /// Writes what [`pprint_n`](DStream::pprint_n) prints to `out` instead of stdout.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let log = std::fs::File::create(std::env::temp_dir().join("dstream-pprint-doc.log")).unwrap();
    /// ssc.queue_stream(&RddQueue::<i32>::new(), true, None).pprint_to(5, log)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pprint_to(&self, n: usize, out: impl Write + Send + 'static) -> Result<()> {
        let out = Mutex::new(out);
        self.register_output("pprint", move |rdd, time| {
            let taken = rdd.take(n.saturating_add(1));
            let text = format_pprint(&time.to_local_string(), &taken, n);
            let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("pprint cannot write to", "its output", e))
        })
    }
}

/// One pprint block, exactly as PySpark prints it.
pub(crate) fn format_pprint<T: Debug>(time: &str, taken: &[T], n: usize) -> String {
    let mut text = format!("{DASHES}\nTime: {time}\n{DASHES}\n");
    for item in taken.iter().take(n) {
        let _ = writeln!(text, "{item:?}");
    }
    if taken.len() > n {
        text.push_str("...\n");
    }
    text.push('\n');
    text
}

/// `prefix-<time in ms>[.suffix]`, as Spark names batch outputs.
pub(crate) fn batch_directory(prefix: &str, suffix: &str, time: Time) -> PathBuf {
    let mut name = format!("{prefix}-{}", time.as_millis());
    if !suffix.is_empty() {
        name.push('.');
        name.push_str(suffix);
    }
    PathBuf::from(name)
}

/// Writes each partition of `rdd` to `dir/part-NNNNN`, atomically: into a hidden
/// sibling directory first, synced, then renamed to `dir` (replacing an older `dir`,
/// as when a batch runs again after recovery).
pub(crate) fn save_partitions<T: Data + Display>(rdd: &Rdd<T>, dir: &Path) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| Error::io("cannot create directory", &parent, e))?;
    let staging = parent.join(format!(".{name}.writing-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| Error::io("cannot remove", &staging, e))?;
    }
    fs::create_dir(&staging).map_err(|e| Error::io("cannot create directory", &staging, e))?;

    let written: Result<Vec<()>> = rdd.env().run(|| {
        rdd.prepare();
        (0..rdd.num_partitions())
            .into_par_iter()
            .map(|p| {
                let path = staging.join(format!("part-{p:05}"));
                write_lines(&path, rdd.compute(p)).map_err(|e| Error::io("cannot write", &path, e))
            })
            .collect()
    });
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }

    if dir.exists() {
        let old = parent.join(format!(".{name}.replaced-{}", std::process::id()));
        fs::rename(dir, &old).map_err(|e| Error::io("cannot move aside", dir, e))?;
        fs::rename(&staging, dir).map_err(|e| Error::io("cannot rename into place", dir, e))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(&staging, dir).map_err(|e| Error::io("cannot rename into place", dir, e))?;
    }
    sync_directory(&parent);
    Ok(())
}

fn write_lines<T: Display>(path: &Path, items: impl Iterator<Item = T>) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for item in items {
        writeln!(out, "{item}")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pprint_block_matches_pyspark() {
        let text = format_pprint("2024-04-30 04:05:40", &[("4", 2), ("line", 10)], 10);
        assert_eq!(
            text,
            "-------------------------------------------\n\
             Time: 2024-04-30 04:05:40\n\
             -------------------------------------------\n\
             (\"4\", 2)\n\
             (\"line\", 10)\n\
             \n"
        );
    }

    #[test]
    fn pprint_marks_more_elements_with_dots() {
        let text = format_pprint("t", &[1, 2, 3], 2);
        assert!(text.ends_with("1\n2\n...\n\n"), "{text:?}");
        let empty = format_pprint::<i32>("t", &[], 10);
        assert!(empty.ends_with("-\n\n"), "{empty:?}");
    }

    #[test]
    fn batch_directories_are_named_like_spark() {
        let t = Time::from_millis(1_714_449_940_000);
        assert_eq!(
            batch_directory("out/c", "txt", t),
            PathBuf::from("out/c-1714449940000.txt")
        );
        assert_eq!(
            batch_directory("c", "", t),
            PathBuf::from("c-1714449940000")
        );
    }

    #[test]
    fn saving_writes_every_partition_and_replaces_old_output() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out-1000");
        save_partitions(&Rdd::from_vec(vec![1, 2, 3], 2), &target).unwrap();
        assert_eq!(
            fs::read_to_string(target.join("part-00000")).unwrap(),
            "1\n2\n"
        );
        assert_eq!(
            fs::read_to_string(target.join("part-00001")).unwrap(),
            "3\n"
        );
        save_partitions(&Rdd::from_vec(vec![9], 1), &target).unwrap();
        assert_eq!(
            fs::read_to_string(target.join("part-00000")).unwrap(),
            "9\n"
        );
        assert!(!target.join("part-00001").exists());
        let hidden: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(hidden.len(), 1, "no staging directories left behind");
    }
}
