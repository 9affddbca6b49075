//! Opening import inputs: a file, `.gz`, or `-` for standard input.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

/// Counts the raw bytes read, so progress can be shown against the file size.
pub struct CountingReader<R> {
    inner: R,
    pub bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

pub struct Input {
    pub reader: Box<dyn BufRead + Send>,
    /// Raw bytes read so far, and the total when known (files, not stdin).
    pub bytes_read: Arc<AtomicU64>,
    pub bytes_total: Option<u64>,
}

pub fn open(name: &str) -> Result<Input> {
    let bytes_read = Arc::new(AtomicU64::new(0));
    let (raw, bytes_total): (Box<dyn Read + Send>, Option<u64>) = if name == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = File::open(name).with_context(|| format!("opening {name}"))?;
        let size = file.metadata().ok().map(|metadata| metadata.len());
        (Box::new(file), size)
    };
    let counted = CountingReader { inner: raw, bytes: bytes_read.clone() };
    let reader: Box<dyn BufRead + Send> = if name.ends_with(".gz") {
        Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(BufReader::new(counted))))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, counted))
    };
    Ok(Input { reader, bytes_read, bytes_total })
}
