//! Reading the last lines of a log file, backwards from its end, so that
//! the cost follows the lines asked for, not the size of the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The last `lines` lines of a file (missing file: none), without line
/// endings, invalid UTF-8 replaced.
pub fn tail(path: &Path, lines: usize) -> std::io::Result<Vec<String>> {
    Ok(tail_with_ends(path, lines)?
        .into_iter()
        .map(|(line, _)| line)
        .collect())
}

/// [`tail`], with the offset in the file just past each line.
pub fn tail_with_ends(path: &Path, lines: usize) -> std::io::Result<Vec<(String, u64)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    tail_of(&mut file, len, lines)
}

/// The offset just past the last line break in the first `len` bytes of
/// `file` (0 when there is none).
pub fn last_line_end(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    while end > 0 {
        let step = (64 * 1024).min(end);
        let start = end - step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        if let Some(index) = memchr::memrchr(b'\n', &chunk) {
            return Ok(start + index as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// [`tail_with_ends`] of the first `len` bytes of an open file.
pub fn tail_of(file: &mut File, len: u64, lines: usize) -> std::io::Result<Vec<(String, u64)>> {
    if lines == 0 {
        return Ok(Vec::new());
    }
    let mut start = len;
    // Newest chunk first; each byte is read and counted once.
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut breaks = 0;
    const STEP: u64 = 64 * 1024;
    // Read backwards until enough line breaks are seen (one more than the
    // lines wanted, to find where the first of them begins; the file's
    // final line break ends the last line and does not count).
    while start > 0 {
        let step = STEP.min(start);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        breaks += memchr::memchr_iter(b'\n', &chunk).count();
        if chunks.is_empty() && chunk.last() == Some(&b'\n') {
            breaks -= 1;
        }
        chunks.push(chunk);
        if breaks >= lines {
            break;
        }
    }
    chunks.reverse();
    let collected = chunks.concat();
    let body = collected.strip_suffix(b"\n").unwrap_or(&collected);
    let mut segments: Vec<(usize, usize)> = Vec::new();
    let mut begin = 0;
    for (index, byte) in body.iter().enumerate() {
        if *byte == b'\n' {
            segments.push((begin, index));
            begin = index + 1;
        }
    }
    segments.push((begin, body.len()));
    let skip = segments.len().saturating_sub(lines);
    let only_one = segments.len() == 1;
    Ok(segments[skip..]
        .iter()
        .filter(|(begin, end)| !(only_one && begin == end))
        .map(|(begin, end)| {
            let line = String::from_utf8_lossy(&body[*begin..*end]);
            let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
            (line, (start + *end as u64 + 1).min(len))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_returns_the_last_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let body: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, body).unwrap();
        assert_eq!(
            tail(&path, 3).unwrap(),
            ["line 99997", "line 99998", "line 99999"]
        );
        assert_eq!(tail(&path, 100_001).unwrap().len(), 100_000);
        // Across several 64 KiB reads, starting exactly at a line.
        let many = tail(&path, 50_000).unwrap();
        assert_eq!(many.len(), 50_000);
        assert_eq!(many[0], "line 50000");
        assert_eq!(many[49_999], "line 99999");
        assert!(tail(&path, 0).unwrap().is_empty());
    }

    #[test]
    fn tail_keeps_an_unterminated_last_line_and_handles_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\npartial").unwrap();
        assert_eq!(tail(&path, 2).unwrap(), ["b", "partial"]);
        std::fs::write(&path, "").unwrap();
        assert!(tail(&path, 5).unwrap().is_empty());
        assert!(tail(&dir.path().join("missing.log"), 5).unwrap().is_empty());
    }
}
