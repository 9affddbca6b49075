//! A progress line on standard error, shown only on a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    label: String,
    last_drawn: Instant,
}

impl Progress {
    pub fn new(label: &str) -> Progress {
        Progress { enabled: std::io::stderr().is_terminal(), label: label.to_string(), last_drawn: Instant::now() }
    }

    /// Redraws at most ten times a second.
    pub fn update(&mut self, bytes_read: u64, bytes_total: Option<u64>, events: u64) {
        if !self.enabled || self.last_drawn.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last_drawn = Instant::now();
        let line = match bytes_total.filter(|&total| total > 0) {
            Some(total) => {
                let fraction = (bytes_read as f64 / total as f64).min(1.0);
                let filled = (fraction * 30.0) as usize;
                format!(
                    "{} [{}{}] {:>3.0}%  {events} events",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    fraction * 100.0
                )
            }
            None => format!("{}  {events} events", self.label),
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{line}\x1b[K");
        let _ = stderr.flush();
    }

    pub fn finish(&mut self) {
        if self.enabled {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}
