//! When the bytes of a log file were written, roughly: the daemon splices
//! without seeing lines, so `logs` dates a line by the write that ended it.

/// A coarse index of when the bytes of one file were written, so that
/// `logs` can interleave the tails of several files in time order: one
/// mark per [`MARK_EVERY`] at most, the oldest forgotten past
/// [`MAX_MARKS`] (32 KiB per file at worst). Kept in memory
/// only: a new daemon knows nothing of what an earlier one wrote.
#[derive(Debug)]
pub(super) struct Marks {
    /// Size of the file when marking began.
    from: u64,
    /// (file size after a write, Unix time in ms of that write), ascending.
    marks: std::collections::VecDeque<(u64, i64)>,
}

const MARK_EVERY: i64 = 2;
const MAX_MARKS: usize = 2048;

impl Marks {
    pub(super) fn from(size: u64) -> Self {
        Self {
            from: size,
            marks: std::collections::VecDeque::new(),
        }
    }

    /// The file is `size` bytes long after a write made now.
    pub(super) fn add(&mut self, size: u64) {
        let now = chrono::Utc::now().timestamp_millis();
        match self.marks.back_mut() {
            // The same burst: this mark covers the new bytes too.
            Some(last) if now - last.1 < MARK_EVERY => last.0 = size,
            _ => {
                while self.marks.len() >= MAX_MARKS {
                    if let Some((size, _)) = self.marks.pop_front() {
                        self.from = size;
                    }
                }
                self.marks.push_back((size, now));
            }
        }
    }

    /// When the line ending at byte `end` was written: the first mark at or
    /// past it (now, if the line is newer than every mark), or None if it
    /// was there before marking began.
    pub(super) fn time_of(&self, end: u64) -> Option<i64> {
        if end <= self.from {
            return None;
        }
        let index = self.marks.partition_point(|(size, _)| *size < end);
        Some(
            self.marks
                .get(index)
                .map_or_else(|| chrono::Utc::now().timestamp_millis(), |m| m.1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_date_each_line_by_the_write_that_ended_it() {
        let mut marks = Marks::from(100);
        marks.marks.push_back((150, 1_000));
        marks.marks.push_back((200, 2_000));
        assert_eq!(marks.time_of(100), None, "there before marking began");
        assert_eq!(marks.time_of(120), Some(1_000));
        assert_eq!(marks.time_of(150), Some(1_000));
        assert_eq!(marks.time_of(151), Some(2_000));
        assert!(marks.time_of(250).is_some_and(|t| t > 2_000), "newer: now");
        for size in 0..(MAX_MARKS as u64 + 10) {
            marks.marks.push_back((300 + size, 3_000 + size as i64));
        }
        marks.add(10_000);
        assert_eq!(marks.marks.len(), MAX_MARKS, "the oldest are forgotten");
        assert_eq!(marks.time_of(200), None);
        assert_eq!(marks.time_of(10_000).map(|t| t > 1_000_000), Some(true));
    }
}
