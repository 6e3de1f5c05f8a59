//! Which files to transfer and delete: aws-cli's comparator and sync strategies, without I/O.
//!
//! Both sides arrive as [`Listed`]s named by their *compare key* (the path relative to the root,
//! `/`-separated; for S3 the key minus the prefix, verbatim). They are merged like aws-cli's
//! `Comparator`, by plain string order, after hoist sorts both sides (aws-cli trusts the
//! listing's order; an unsorted listing from an S3-compatible store would make it delete files
//! that exist, so hoist sorts instead).

/// Microseconds since the Unix epoch: aws-cli compares Python datetimes, which have µs precision.
pub(crate) type Micros = i64;

/// Converts a time to µs, rounding half to even like `datetime.fromtimestamp`.
pub(crate) fn micros(time: std::time::SystemTime) -> Micros {
    let (negative, duration) = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (false, d),
        Err(e) => (true, e.duration()),
    };
    let nanos = duration.as_nanos();
    let (whole, rest) = (nanos / 1000, nanos % 1000);
    let rounded = if rest > 500 || (rest == 500 && whole % 2 == 1) {
        whole + 1
    } else {
        whole
    };
    let value = i64::try_from(rounded).unwrap_or(i64::MAX);
    if negative { -value } else { value }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// local → S3
    Upload,
    /// S3 → local
    Download,
    /// S3 → S3 (server-side copy)
    Copy,
}

impl Direction {
    /// aws-cli's operation name, used in output lines.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
            Direction::Copy => "copy",
        }
    }
}

/// How a file present on both sides is compared (aws-cli's `file_at_src_and_dest` strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Default: sizes differ, or the source is newer (see [`needs_transfer`]).
    SizeAndTime,
    /// `--size-only`.
    SizeOnly,
    /// `--exact-timestamps` (beats `--size-only`, as in aws-cli where it registers later).
    ExactTimestamps,
}

impl Strategy {
    pub(crate) fn from_flags(size_only: bool, exact_timestamps: bool) -> Strategy {
        if exact_timestamps {
            Strategy::ExactTimestamps
        } else if size_only {
            Strategy::SizeOnly
        } else {
            Strategy::SizeAndTime
        }
    }
}

/// One file or object on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) modified: Micros,
}

/// Whether a file on both sides is transferred (aws-cli `SizeAndLastModifiedSync`,
/// `SizeOnlySync`, `ExactTimestampsSync`), with `delta = destination time - source time`:
///
/// | direction | up to date iff |
/// |---|---|
/// | upload, copy | `delta >= 0` (transfer when the source is strictly newer) |
/// | download | `delta <= 0`: transfer when the *local* file is strictly newer (aws-cli's rule, kept) |
/// | download, `--exact-timestamps` | `delta == 0` |
pub(crate) fn needs_transfer(
    direction: Direction,
    strategy: Strategy,
    source: &Listed,
    destination: &Listed,
) -> bool {
    if source.size != destination.size {
        return true;
    }
    let delta = destination.modified - source.modified;
    match (strategy, direction) {
        (Strategy::SizeOnly, _) => false,
        (Strategy::ExactTimestamps, Direction::Download) => delta != 0,
        (_, Direction::Download) => delta > 0,
        (_, Direction::Upload | Direction::Copy) => delta < 0,
    }
}

/// One decision of the merge, by index into the two sorted slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Transfer {
        source: usize,
        destination: Option<usize>,
    },
    Delete {
        destination: usize,
    },
}

/// Merges two sides sorted by name into the steps to take, in merged name order.
pub(crate) fn merge(
    source: &[Listed],
    destination: &[Listed],
    direction: Direction,
    strategy: Strategy,
    delete: bool,
) -> Vec<Step> {
    debug_assert!(source.windows(2).all(|w| w[0].name <= w[1].name));
    debug_assert!(destination.windows(2).all(|w| w[0].name <= w[1].name));
    let mut steps = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < source.len() || j < destination.len() {
        let order = match (source.get(i), destination.get(j)) {
            (Some(s), Some(d)) => s.name.cmp(&d.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Equal => {
                if needs_transfer(direction, strategy, &source[i], &destination[j]) {
                    steps.push(Step::Transfer {
                        source: i,
                        destination: Some(j),
                    });
                }
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                steps.push(Step::Transfer {
                    source: i,
                    destination: None,
                });
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                if delete {
                    steps.push(Step::Delete { destination: j });
                }
                j += 1;
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(name: &str, size: u64, seconds: i64) -> Listed {
        Listed {
            name: name.into(),
            size,
            modified: seconds * 1_000_000,
        }
    }

    #[test]
    fn strategy_table() {
        use Direction::*;
        use Strategy::*;
        // (direction, strategy, source (size, time), destination (size, time), transfer?)
        let cases = [
            (Upload, SizeAndTime, (1, 10), (1, 10), false),
            (Upload, SizeAndTime, (1, 11), (1, 10), true),
            (Upload, SizeAndTime, (1, 9), (1, 10), false),
            (Upload, SizeAndTime, (2, 9), (1, 10), true),
            (Copy, SizeAndTime, (1, 11), (1, 10), true),
            (Copy, SizeAndTime, (1, 9), (1, 10), false),
            // Downloads: the source is S3, the destination the local file. aws-cli transfers
            // when the *local* file is newer, and not when S3 is newer (observed, §4).
            (Download, SizeAndTime, (1, 10), (1, 11), true),
            (Download, SizeAndTime, (1, 11), (1, 10), false),
            (Download, SizeAndTime, (1, 10), (1, 10), false),
            (Download, SizeAndTime, (1, 10), (2, 10), true),
            (Download, ExactTimestamps, (1, 11), (1, 10), true),
            (Download, ExactTimestamps, (1, 10), (1, 11), true),
            (Download, ExactTimestamps, (1, 10), (1, 10), false),
            // --exact-timestamps only changes downloads.
            (Upload, ExactTimestamps, (1, 9), (1, 10), false),
            (Upload, ExactTimestamps, (1, 11), (1, 10), true),
            (Copy, ExactTimestamps, (1, 9), (1, 10), false),
            (Upload, SizeOnly, (1, 11), (1, 10), false),
            (Download, SizeOnly, (1, 10), (1, 11), false),
            (Copy, SizeOnly, (1, 1), (2, 1), true),
        ];
        for (direction, strategy, (ss, st), (ds, dt), want) in cases {
            let source = entry("k", ss, st);
            let destination = entry("k", ds, dt);
            assert_eq!(
                needs_transfer(direction, strategy, &source, &destination),
                want,
                "{direction:?} {strategy:?} src=({ss},{st}) dst=({ds},{dt})"
            );
        }
    }

    #[test]
    fn exact_timestamps_beats_size_only() {
        assert_eq!(Strategy::from_flags(true, true), Strategy::ExactTimestamps);
        assert_eq!(Strategy::from_flags(true, false), Strategy::SizeOnly);
        assert_eq!(Strategy::from_flags(false, false), Strategy::SizeAndTime);
    }

    #[test]
    fn merge_in_byte_order() {
        let source = [
            entry("a-b.txt", 1, 5),
            entry("a.txt", 1, 5),
            entry("a/x", 1, 5),
            entry("same", 3, 5),
        ];
        let destination = [
            entry("0first", 1, 5),
            entry("a.txt", 2, 5),
            entry("same", 3, 5),
            entry("zz", 1, 5),
        ];
        let steps = merge(
            &source,
            &destination,
            Direction::Upload,
            Strategy::SizeAndTime,
            true,
        );
        assert_eq!(
            steps,
            [
                Step::Delete { destination: 0 },
                Step::Transfer {
                    source: 0,
                    destination: None
                },
                Step::Transfer {
                    source: 1,
                    destination: Some(1)
                },
                Step::Transfer {
                    source: 2,
                    destination: None
                },
                Step::Delete { destination: 3 },
            ]
        );
        let without_delete = merge(
            &source,
            &destination,
            Direction::Upload,
            Strategy::SizeAndTime,
            false,
        );
        assert_eq!(without_delete.len(), 3);
        assert!(merge(&[], &[], Direction::Copy, Strategy::SizeOnly, true).is_empty());
    }

    #[test]
    fn micros_round_like_python() {
        let at = |nanos: u64| micros(UNIX_EPOCH + Duration::from_nanos(nanos));
        assert_eq!(at(10_000_000_400), 10_000_000);
        assert_eq!(at(10_000_000_600), 10_000_001);
        assert_eq!(at(10_000_000_500), 10_000_000);
        assert_eq!(at(10_000_001_500), 10_000_002);
        assert_eq!(micros(UNIX_EPOCH - Duration::from_secs(1)), -1_000_000);
    }
}
