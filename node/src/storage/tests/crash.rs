//! Crash recovery on real files: a log written in batches is damaged (cut at a byte
//! offset, a byte flipped, a segment lost), then reopened. Recovery must keep exactly the
//! records wholly before the damage, drop everything after it, never panic, and leave a
//! log that takes new appends and reopens cleanly.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use raft::prelude::{ConfState, Entry, HardState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tempfile::TempDir;

use super::support::*;
use crate::storage::wal::segment::{self, HEADER_LEN};
use crate::storage::{RaftLogStorage, WalOptions};

/// Where one record landed on disk, and which write made it.
#[derive(Debug, Clone, Copy)]
struct Frame {
    seg: u64,
    start: u64,
    end: u64,
    /// `None`: the bootstrap conf state; `Some(i)`: batch `i`.
    batch: Option<usize>,
}

struct Written {
    dir: TempDir,
    opts: WalOptions,
    conf_state: ConfState,
    batches: Vec<(Vec<Entry>, HardState)>,
    frames: Vec<Frame>,
}

/// Writes a conf state and then `n` batches (1-4 entries of 0-400 bytes, sometimes
/// overwriting the last entries with a higher term, each with a hard state), recording
/// where every frame went.
fn write_log(seed: u64, n: usize, opts: WalOptions) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut frames = Vec::new();
    let mut pos = (s.segments()[0], HEADER_LEN);
    let mut note = |s: &RaftLogStorage, batch| {
        let seg = *s.segments().last().unwrap();
        let end = fs::metadata(segment::path(dir.path(), seg)).unwrap().len();
        let start = if seg == pos.0 { pos.1 } else { HEADER_LEN };
        frames.push(Frame {
            seg,
            start,
            end,
            batch,
        });
        pos = (seg, end);
    };
    let cs = conf_state(&[1, 2, 3]);
    s.set_conf_state(&cs).unwrap();
    note(&s, None);
    let mut batches = Vec::new();
    let (mut last, mut term) = (0u64, 1u64);
    for i in 0..n {
        let back = if last > 2 && rng.gen_ratio(1, 6) {
            term += 1;
            rng.gen_range(1..=2)
        } else {
            0
        };
        let first = last + 1 - back;
        let count = rng.gen_range(1..=4);
        let ents: Vec<Entry> = (first..first + count)
            .map(|idx| {
                let len = rng.gen_range(0..400);
                let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                entry_with(idx, term, &data)
            })
            .collect();
        last = first + count - 1;
        let hs = hard_state(term, 1, first - 1);
        s.append(&ents, Some(&hs)).unwrap();
        note(&s, Some(i));
        batches.push((ents, hs));
    }
    drop(s);
    Written {
        dir,
        opts,
        conf_state: cs,
        batches,
        frames,
    }
}

impl Written {
    /// What a reopen must serve when the frames for which `survives` holds are kept.
    fn expected(&self, survives: impl Fn(&Frame) -> bool) -> Observed {
        let mut entries: Vec<Entry> = Vec::new();
        let mut hs = HardState::default();
        let mut cs = ConfState::default();
        for f in self.frames.iter().filter(|f| survives(f)) {
            match f.batch {
                None => cs = self.conf_state.clone(),
                Some(i) => {
                    let (ents, h) = &self.batches[i];
                    entries.truncate((ents[0].index - 1) as usize);
                    entries.extend(ents.iter().cloned());
                    hs = h.clone();
                }
            }
        }
        Observed {
            first: 1,
            last: entries.len() as u64,
            entries,
            hard_state: hs,
            conf_state: cs,
            snapshot: Default::default(),
        }
    }

    /// Frames kept when the damage starts at byte `offset` of segment `seg`.
    fn survivors_of_damage_at(&self, seg: u64, offset: u64) -> impl Fn(&Frame) -> bool {
        move |f: &Frame| f.seg < seg || (f.seg == seg && offset >= HEADER_LEN && f.end <= offset)
    }

    fn segments(&self) -> Vec<(u64, u64)> {
        segment_files(self.dir.path())
    }

    fn copy(&self) -> TempDir {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(self.dir.path(), copy.path());
        copy
    }
}

/// Reopens the damaged copy, checks it serves `want`, then appends one more batch and
/// checks a second reopen serves it too.
fn check_recovery(dir: &Path, opts: WalOptions, want: &Observed, what: &str) {
    let s = RaftLogStorage::open(dir, opts).unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
    let got = observe(&s);
    assert_eq!(got.entries.len(), want.entries.len(), "{what}: entry count");
    assert_eq!(&got, want, "{what}");
    let next = entry_with(want.last + 1, 99, b"after recovery");
    let hs = hard_state(99, 1, want.last);
    s.append(std::slice::from_ref(&next), Some(&hs)).unwrap();
    drop(s);
    let s = RaftLogStorage::open(dir, opts).unwrap();
    assert!(
        s.recovery_report().damage.is_none(),
        "{what}: second reopen found damage"
    );
    let mut want = Observed {
        last: want.last + 1,
        hard_state: hs,
        ..want.clone()
    };
    want.entries.push(next);
    assert_eq!(observe(&s), want, "{what}: after append and reopen");
}

#[test]
fn crash_cut_last_segment_at_every_offset() {
    // Seed 1: every offset of the last segment; seeds 2 and 3: a random sample.
    for (seed, sample) in [(1, None), (2, Some(300)), (3, Some(300))] {
        let w = write_log(seed, 40, nosync(3000));
        let segs = w.segments();
        assert!(segs.len() >= 3, "want several segments, got {segs:?}");
        let &(last_seg, last_len) = segs.last().unwrap();
        let last_bytes = fs::read(segment::path(w.dir.path(), last_seg)).unwrap();
        let prev_seg = last_seg - 1;
        let prev_bytes = fs::read(segment::path(w.dir.path(), prev_seg)).unwrap();
        // Damage, recovery and the check's append only touch the last two segments (the
        // append goes to the one before when the last is dropped whole) and any segment
        // rolled to, so one copy is reset per cut instead of copying everything.
        let copy = w.copy();
        let cuts: Vec<u64> = match sample {
            None => (0..=last_len).collect(),
            Some(n) => {
                let mut rng = StdRng::seed_from_u64(seed);
                (0..n).map(|_| rng.gen_range(0..=last_len)).collect()
            }
        };
        for cut in cuts {
            for (seq, _) in segment_files(copy.path()) {
                if seq > last_seg {
                    fs::remove_file(segment::path(copy.path(), seq)).unwrap();
                }
            }
            fs::write(segment::path(copy.path(), prev_seg), &prev_bytes).unwrap();
            fs::write(
                segment::path(copy.path(), last_seg),
                &last_bytes[..cut as usize],
            )
            .unwrap();
            let want = w.expected(w.survivors_of_damage_at(last_seg, cut));
            check_recovery(
                copy.path(),
                w.opts,
                &want,
                &format!("seed {seed}, cut at {cut}"),
            );
        }
    }
}

#[test]
fn crash_cut_reports_what_was_dropped() {
    let w = write_log(3, 30, opts(1 << 20));
    let &(seg, len) = w.segments().last().unwrap();
    // Cut in the middle of the last frame.
    let last = *w.frames.last().unwrap();
    let cut = (last.start + last.end) / 2;
    let copy = w.copy();
    OpenOptions::new()
        .write(true)
        .open(segment::path(copy.path(), seg))
        .unwrap()
        .set_len(cut)
        .unwrap();
    let s = RaftLogStorage::open(copy.path(), w.opts).unwrap();
    let damage = s.recovery_report().damage.clone().expect("damage reported");
    assert_eq!((damage.segment, damage.offset), (seg, last.start));
    assert_eq!(damage.dropped_bytes, cut - last.start);
    assert!(damage.reason.contains("torn"), "{}", damage.reason);
    assert_eq!(
        fs::metadata(segment::path(copy.path(), seg)).unwrap().len(),
        last.start,
        "truncated at the damage"
    );
    assert!(len > cut);
}

fn written_for_flips() -> &'static Written {
    static W: OnceLock<Written> = OnceLock::new();
    W.get_or_init(|| write_log(7, 80, opts(8000)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    /// A byte changed anywhere, in any segment: everything before its frame survives;
    /// that frame, the rest of its segment and every later segment are dropped.
    #[test]
    fn crash_flipped_byte_anywhere(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let w = written_for_flips();
        let segs = w.segments();
        let total: u64 = segs.iter().map(|s| s.1).sum();
        let mut off = at.index(total as usize) as u64;
        let mut target = segs[0];
        for &(seq, len) in &segs {
            if off < len {
                target = (seq, len);
                break;
            }
            off -= len;
        }
        let copy = w.copy();
        let p = segment::path(copy.path(), target.0);
        let mut bytes = fs::read(&p).unwrap();
        bytes[off as usize] ^= mask;
        fs::write(&p, &bytes).unwrap();
        let want = w.expected(w.survivors_of_damage_at(target.0, off));
        check_recovery(copy.path(), w.opts, &want, &format!("flip {mask:#04x} at {}:{off}", target.0));
    }
}

#[test]
fn crash_damage_in_an_earlier_segment_drops_later_segments() {
    let w = write_log(11, 80, opts(5000));
    let segs = w.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    let (seg, len) = segs[1];
    let victim = w
        .frames
        .iter()
        .find(|f| f.seg == seg && f.start > HEADER_LEN)
        .copied()
        .unwrap();
    let cut_at = victim.start + 5;
    assert!(cut_at < len);

    // (1) A torn write in the middle of segment 2 (its tail lost).
    let copy = w.copy();
    OpenOptions::new()
        .write(true)
        .open(segment::path(copy.path(), seg))
        .unwrap()
        .set_len(cut_at)
        .unwrap();
    let want = w.expected(w.survivors_of_damage_at(seg, cut_at));
    {
        let s = RaftLogStorage::open(copy.path(), w.opts).unwrap();
        let d = s.recovery_report().damage.clone().unwrap();
        assert_eq!((d.segment, d.offset), (seg, victim.start));
        let later: Vec<u64> = segs[2..].iter().map(|s| s.0).collect();
        assert_eq!(d.dropped_segments, later);
        let later_frames = w.frames.iter().filter(|f| f.seg > seg).count() as u64;
        assert_eq!(d.dropped_records, later_frames);
        let later_bytes: u64 = segs[2..].iter().map(|s| s.1).sum();
        assert_eq!(d.dropped_bytes, later_bytes + (cut_at - victim.start));
        assert_eq!(
            segment_files(copy.path())
                .iter()
                .map(|s| s.0)
                .collect::<Vec<_>>(),
            vec![segs[0].0, seg]
        );
    }
    check_recovery(copy.path(), w.opts, &want, "torn middle segment");

    // (2) A CRC failure in the middle of segment 2.
    let copy = w.copy();
    let p = segment::path(copy.path(), seg);
    let mut bytes = fs::read(&p).unwrap();
    bytes[(victim.end - 1) as usize] ^= 0x40;
    fs::write(&p, &bytes).unwrap();
    check_recovery(copy.path(), w.opts, &want, "corrupt middle segment");

    // (3) The header of segment 2 damaged: segments 2.. are dropped whole.
    let copy = w.copy();
    let p = segment::path(copy.path(), seg);
    let mut bytes = fs::read(&p).unwrap();
    bytes[9] ^= 0xff;
    fs::write(&p, &bytes).unwrap();
    let want_hdr = w.expected(w.survivors_of_damage_at(seg, 0));
    check_recovery(
        copy.path(),
        w.opts,
        &want_hdr,
        "bad header of middle segment",
    );

    // (4) Segment 2 missing altogether: segment 1 survives, the rest is dropped.
    let copy = w.copy();
    fs::remove_file(segment::path(copy.path(), seg)).unwrap();
    check_recovery(copy.path(), w.opts, &want_hdr, "missing middle segment");
}

#[test]
fn crash_garbage_or_zeroes_after_the_last_frame_are_cut() {
    let w = write_log(5, 20, opts(1 << 20));
    let &(seg, len) = w.segments().last().unwrap();
    let want = w.expected(|_| true);
    let mut rng = StdRng::seed_from_u64(5);
    let tails: Vec<Vec<u8>> = vec![
        vec![0u8; 4096],
        vec![0u8; 3],
        (0..1000).map(|_| rng.gen()).collect(),
        // A plausible frame header announcing more bytes than exist.
        [100u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
    ];
    for (i, tail) in tails.iter().enumerate() {
        let copy = w.copy();
        let p = segment::path(copy.path(), seg);
        OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(tail)
            .unwrap();
        {
            let s = RaftLogStorage::open(copy.path(), w.opts).unwrap();
            let d = s.recovery_report().damage.clone().unwrap();
            assert_eq!((d.segment, d.offset), (seg, len), "tail #{i}");
            assert_eq!(d.dropped_bytes, tail.len() as u64, "tail #{i}");
        }
        check_recovery(copy.path(), w.opts, &want, &format!("tail #{i}"));
    }
}

#[test]
fn crash_with_every_segment_damaged_starts_empty() {
    let w = write_log(9, 10, opts(1 << 20));
    let copy = w.copy();
    let (seg, _) = w.segments()[0];
    fs::write(segment::path(copy.path(), seg), b"VWA").unwrap();
    check_recovery(
        copy.path(),
        w.opts,
        &w.expected(|_| false),
        "torn first header",
    );
}
