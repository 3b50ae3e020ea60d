//! The `jsonl` exporter: one trace record per line, appended to a file.
//!
//! Each batch is written with one `write` on a file opened for appending, so lines of one
//! process never interleave. A line torn by a crash mid-write is cut off when the file is
//! opened again: the file only ever holds whole lines.

use super::super::capture::Transcriber;
use super::super::trace::Trace;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Jsonl {
    path: PathBuf,
    file: File,
    line: Vec<u8>,
}

impl Jsonl {
    pub fn open(path: PathBuf) -> Result<Jsonl, String> {
        let describe = |e: std::io::Error| format!("{}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(describe)?;
        }
        cut_torn_line(&path).map_err(describe)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(describe)?;
        Ok(Jsonl {
            path,
            file,
            line: Vec::new(),
        })
    }

    pub fn write(&mut self, batch: &[Arc<Trace>], t: &Transcriber) -> Result<(), String> {
        self.line.clear();
        for trace in batch {
            trace.write_json(t, &mut self.line);
            self.line.push(b'\n');
        }
        self.file
            .write_all(&self.line)
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Truncates the file after its last newline, if it does not end with one.
fn cut_torn_line(path: &PathBuf) -> std::io::Result<()> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    // Look back from the end, a block at a time, for the last newline.
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let buf = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep != len {
                file.set_len(keep)?;
            }
            return Ok(());
        }
        end = start;
    }
    file.set_len(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":").unwrap();
        cut_torn_line(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
        std::fs::write(&path, b"{\"torn").unwrap();
        cut_torn_line(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::write(&path, b"{}\n").unwrap();
        cut_torn_line(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        cut_torn_line(&dir.path().join("absent")).unwrap();
    }
}
