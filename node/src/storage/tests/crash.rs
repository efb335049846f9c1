//! Crash recovery on real files: a log written in batches is damaged (cut at a byte
//! offset, a byte flipped, a segment lost), then reopened. Damage a crash can leave (a torn
//! tail of the last segment) is cut: exactly the records wholly before it are kept, and the
//! log takes new appends and reopens cleanly. Any other damage fails the open with an
//! error naming the file and offset, and leaves every file as it was. Never a panic.

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
use crate::storage::{RaftLogStorage, StorageError, WalOptions};

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

/// Every segment file's name and bytes, to check that a refused open changed nothing.
fn snapshot_files(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    segment_files(dir)
        .into_iter()
        .map(|(seq, _)| (seq, fs::read(segment::path(dir, seq)).unwrap()))
        .collect()
}

/// Opens `dir`, expecting it to be refused as damaged at `offset` of the file `file`,
/// with every file left as it was.
fn check_refused(dir: &Path, opts: WalOptions, file: &str, offset: u64, what: &str) -> String {
    let before = snapshot_files(dir);
    let err = match RaftLogStorage::open(dir, opts) {
        Ok(_) => panic!("{what}: damaged WAL was opened"),
        Err(e) => e,
    };
    match &err {
        StorageError::Damaged {
            path, offset: at, ..
        } => {
            assert_eq!(
                path.file_name().and_then(|n| n.to_str()),
                Some(file),
                "{what}: {err}"
            );
            assert_eq!(*at, offset, "{what}: {err}");
        }
        other => panic!("{what}: expected Damaged, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(file) && msg.contains(&format!("offset {offset}")),
        "{what}: message must name file and offset: {msg}"
    );
    assert_eq!(
        snapshot_files(dir),
        before,
        "{what}: a refused open changed files"
    );
    msg
}

impl Written {
    /// The frame containing byte `off` of segment `seg`; `None` for the header.
    fn frame_at(&self, seg: u64, off: u64) -> Option<Frame> {
        self.frames
            .iter()
            .find(|f| f.seg == seg && f.start <= off && off < f.end)
            .copied()
    }

    fn is_last_frame(&self, f: &Frame) -> bool {
        !self
            .frames
            .iter()
            .any(|g| g.seg == f.seg && g.start >= f.end)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    /// A byte changed anywhere, in any segment. Only the last frame of the last segment
    /// can be a torn append: that one is cut (everything before it survives). Anywhere
    /// else (an earlier segment, a header, or a frame an intact one follows) the open is
    /// refused, naming the segment and the start of the damaged frame (0 for a header).
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
        let what = format!("flip {mask:#04x} at {}:{off}", target.0);
        let is_last_seg = target.0 == segs.last().unwrap().0;
        match w.frame_at(target.0, off) {
            Some(f) if is_last_seg && w.is_last_frame(&f) => {
                let want = w.expected(w.survivors_of_damage_at(target.0, off));
                check_recovery(copy.path(), w.opts, &want, &what);
            }
            f => {
                let at = f.map_or(0, |f| f.start);
                check_refused(copy.path(), w.opts, &segment::file_name(target.0), at, &what);
            }
        }
    }
}

/// The old rule cut the log at the first bad frame in any segment and deleted every later
/// segment. Those were fsynced and may hold acknowledged entries and the node's vote, and a
/// crash cannot damage them, so the rule now refuses to open instead.
#[test]
fn crash_damage_in_an_earlier_segment_is_refused() {
    let w = write_log(11, 80, opts(5000));
    let segs = w.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    let (seg, len) = segs[1];
    let name = segment::file_name(seg);
    let victim = w
        .frames
        .iter()
        .find(|f| f.seg == seg && f.start > HEADER_LEN)
        .copied()
        .unwrap();
    let cut_at = victim.start + 5;
    assert!(cut_at < len);

    // (1) The tail of segment 2 lost (a shortened file).
    let copy = w.copy();
    OpenOptions::new()
        .write(true)
        .open(segment::path(copy.path(), seg))
        .unwrap()
        .set_len(cut_at)
        .unwrap();
    let msg = check_refused(
        copy.path(),
        w.opts,
        &name,
        victim.start,
        "torn middle segment",
    );
    assert!(msg.contains("torn"), "{msg}");

    // (2) A CRC failure in the middle of segment 2.
    let copy = w.copy();
    let p = segment::path(copy.path(), seg);
    let mut bytes = fs::read(&p).unwrap();
    bytes[(victim.end - 1) as usize] ^= 0x40;
    fs::write(&p, &bytes).unwrap();
    let msg = check_refused(
        copy.path(),
        w.opts,
        &name,
        victim.start,
        "corrupt middle segment",
    );
    assert!(msg.contains("crc"), "{msg}");

    // (3) The header of segment 2 damaged.
    let copy = w.copy();
    let p = segment::path(copy.path(), seg);
    let mut bytes = fs::read(&p).unwrap();
    bytes[9] ^= 0xff;
    fs::write(&p, &bytes).unwrap();
    check_refused(
        copy.path(),
        w.opts,
        &name,
        0,
        "bad header of middle segment",
    );

    // (4) Segment 2 missing altogether: the missing file is named.
    let copy = w.copy();
    fs::remove_file(segment::path(copy.path(), seg)).unwrap();
    let msg = check_refused(copy.path(), w.opts, &name, 0, "missing middle segment");
    assert!(msg.contains("missing"), "{msg}");
}

/// A hole in the last segment followed by intact frames is not something an fsynced log
/// turns into by a crash of the append in flight (that append is the end of the file), so
/// the frames after the hole may have been acknowledged: refused, not cut.
#[test]
fn crash_intact_frame_after_a_bad_one_in_the_last_segment_is_refused() {
    let w = write_log(13, 30, opts(1 << 20));
    let segs = w.segments();
    let (seg, _) = *segs.last().unwrap();
    let in_last: Vec<Frame> = w.frames.iter().filter(|f| f.seg == seg).copied().collect();
    assert!(in_last.len() >= 3);
    let victim = in_last[in_last.len() / 2];
    let name = segment::file_name(seg);

    // Zeroed (a lost block), and a flipped payload byte (rot).
    for (how, zero) in [("zeroed frame", true), ("flipped byte", false)] {
        let copy = w.copy();
        let p = segment::path(copy.path(), seg);
        let mut bytes = fs::read(&p).unwrap();
        if zero {
            bytes[victim.start as usize..victim.end as usize].fill(0);
        } else {
            bytes[(victim.start + 10) as usize] ^= 0x01;
        }
        fs::write(&p, &bytes).unwrap();
        let msg = check_refused(copy.path(), w.opts, &name, victim.start, how);
        assert!(msg.contains("intact frame follows"), "{how}: {msg}");
    }
}

/// A last segment whose header is damaged but which holds more than a header was created
/// (header fsynced) before frames went in: not a torn creation, refused.
#[test]
fn crash_bad_header_on_a_last_segment_with_frames_is_refused() {
    let w = write_log(17, 30, opts(4000));
    let &(seg, len) = w.segments().last().unwrap();
    assert!(len > HEADER_LEN);
    let copy = w.copy();
    let p = segment::path(copy.path(), seg);
    let mut bytes = fs::read(&p).unwrap();
    bytes[0] = b'X';
    fs::write(&p, &bytes).unwrap();
    check_refused(
        copy.path(),
        w.opts,
        &segment::file_name(seg),
        0,
        "bad last header",
    );
}

/// A crash while creating the next segment (before its header was durable) leaves a last
/// segment of at most a header's length: deleted, the one before it appended to again.
#[test]
fn crash_torn_creation_of_a_new_segment_is_cut() {
    let w = write_log(19, 30, opts(4000));
    let segs = w.segments();
    let (last, _) = *segs.last().unwrap();
    let want = w.expected(|_| true);
    for torn in [&b""[..], &b"VWA"[..], &[0u8; 16][..]] {
        let copy = w.copy();
        let next = segment::path(copy.path(), last + 1);
        fs::write(&next, torn).unwrap();
        {
            let s = RaftLogStorage::open(copy.path(), w.opts).unwrap();
            let d = s
                .recovery_report()
                .damage
                .clone()
                .expect("torn creation reported");
            assert_eq!((d.segment, d.offset), (last + 1, 0));
            assert_eq!(d.dropped_bytes, torn.len() as u64);
            assert!(!next.exists(), "torn segment deleted");
        }
        check_recovery(
            copy.path(),
            w.opts,
            &want,
            &format!("torn creation {torn:?}"),
        );
    }
}

/// The hard state (vote) is in the last segment; damage in an earlier one must not take it
/// away: the open is refused and the segment holding the vote is still on disk, unchanged.
#[test]
fn crash_damage_never_drops_the_segment_holding_the_vote() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(2000);
    {
        let s = RaftLogStorage::open(dir.path(), o).unwrap();
        s.set_conf_state(&conf_state(&[1, 2, 3])).unwrap();
        for i in 1..=20u64 {
            s.append(
                &[entry_with(i, 1, &[7u8; 300])],
                Some(&hard_state(1, 0, i - 1)),
            )
            .unwrap();
        }
        // The vote for term 5, in the last segment.
        s.set_hard_state(&hard_state(5, 3, 19)).unwrap();
    }
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let vote_seg = segs.last().unwrap().0;
    let vote_bytes = fs::read(segment::path(dir.path(), vote_seg)).unwrap();
    let p = segment::path(dir.path(), segs[0].0);
    let mut bytes = fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    fs::write(&p, &bytes).unwrap();
    assert!(RaftLogStorage::open(dir.path(), o).is_err());
    assert_eq!(
        fs::read(segment::path(dir.path(), vote_seg)).unwrap(),
        vote_bytes
    );
}

/// Leading segments are deleted only after a snapshot record (full hard and conf state) is
/// durable. Leading segments gone without one (removed by hand): refused, since the conf
/// state and vote they held would silently vanish.
#[test]
fn crash_missing_leading_segments_without_a_snapshot_record_are_refused() {
    let w = write_log(23, 40, opts(3000));
    let segs = w.segments();
    assert!(segs.len() >= 3);
    let copy = w.copy();
    fs::remove_file(segment::path(copy.path(), segs[0].0)).unwrap();
    match RaftLogStorage::open(copy.path(), w.opts) {
        Err(StorageError::Inconsistent(msg)) => assert!(msg.contains("missing"), "{msg}"),
        Err(e) => panic!("expected Inconsistent, got {e}"),
        Ok(_) => panic!("opened a log whose first segments are gone"),
    }
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
fn crash_torn_creation_of_the_only_segment_starts_empty() {
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
