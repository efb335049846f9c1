//! The layouts a node's config names: a replica's log opened, found and discarded the
//! same way in both, and a data directory refused by the layout it was not written with.

use std::path::Path;

use common::config::RaftLogLayout;

use super::support::*;
use crate::storage::raft_logs::{GROUP_WAL_DIR, NODE_LOG_DIR};
use crate::storage::wal::segment;
use crate::storage::{RaftLogs, StorageError, WalOptions};

fn logs(data_dir: &Path, layout: RaftLogLayout) -> Result<RaftLogs, StorageError> {
    RaftLogs::open(data_dir, layout, WalOptions::default())
}

/// Opens group 7's log in `logs`, gives it a configuration and two entries.
fn write_group(logs: &RaftLogs, group_dir: &Path) {
    let s = logs.open_group(7, group_dir).unwrap();
    s.set_conf_state(&conf_state(&[1, 2, 3])).unwrap();
    s.append(
        &[entry_with(1, 1, b"a"), entry_with(2, 1, b"b")],
        Some(&hard_state(1, 1, 0)),
    )
    .unwrap();
}

#[test]
fn a_wal_has_no_records_until_one_is_written_past_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("group-1").join(GROUP_WAL_DIR);
    assert!(!segment::any_records(&wal), "no directory");
    std::fs::create_dir_all(&wal).unwrap();
    std::fs::write(segment::path(&wal, 1), segment::encode_header(1)).unwrap();
    assert!(!segment::any_records(&wal), "a header alone is no log");
    let s = crate::storage::RaftLogStorage::open(&wal, WalOptions::default()).unwrap();
    s.set_conf_state(&conf_state(&[1])).unwrap();
    assert!(segment::any_records(&wal));
}

#[test]
fn both_layouts_find_open_and_discard_a_group_log() {
    for layout in [RaftLogLayout::Group, RaftLogLayout::Node] {
        let dir = tempfile::tempdir().unwrap();
        let group_dir = dir.path().join("group-7");
        {
            let logs = logs(dir.path(), layout).unwrap();
            assert!(!logs.has_log(7, &group_dir), "{layout:?}: nothing yet");
            write_group(&logs, &group_dir);
            assert!(logs.has_log(7, &group_dir), "{layout:?}: written");
        }
        let logs = logs(dir.path(), layout).unwrap();
        assert!(logs.has_log(7, &group_dir), "{layout:?}: after a restart");
        let s = logs.open_group(7, &group_dir).unwrap();
        assert_eq!(observe(&s).last, 2, "{layout:?}");
        assert_eq!(s.conf_state().voters, vec![1, 2, 3], "{layout:?}");
        drop(s);
        if layout == RaftLogLayout::Node {
            assert_eq!(
                std::fs::read_dir(&group_dir).map_or(0, |d| d.count()),
                0,
                "the node log writes nothing in the group directory"
            );
            logs.discard(7).unwrap();
            assert!(!logs.has_log(7, &group_dir));
            drop(logs);
            let logs = self::logs(dir.path(), layout).unwrap();
            assert!(!logs.has_log(7, &group_dir), "a discard is durable");
            assert!(logs.unopened_groups().is_empty());
            let s = logs.open_group(7, &group_dir).unwrap();
            assert_eq!(observe(&s).last, 0, "reopened empty");
        }
    }
}

#[test]
fn a_data_directory_keeps_the_layout_it_was_written_with() {
    let dir = tempfile::tempdir().unwrap();
    write_group(
        &logs(dir.path(), RaftLogLayout::Group).unwrap(),
        &dir.path().join("group-7"),
    );
    let err = logs(dir.path(), RaftLogLayout::Node).expect_err("refused");
    assert!(err.to_string().contains("raft.log = \"group\""), "{err}");
    assert!(!dir.path().join(NODE_LOG_DIR).exists(), "nothing created");

    let dir = tempfile::tempdir().unwrap();
    write_group(
        &logs(dir.path(), RaftLogLayout::Node).unwrap(),
        &dir.path().join("group-7"),
    );
    let err = logs(dir.path(), RaftLogLayout::Group).expect_err("refused");
    assert!(err.to_string().contains("raft.log = \"node\""), "{err}");
    // An empty layout directory of the other kind is no obstacle.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("group-3").join(GROUP_WAL_DIR)).unwrap();
    assert!(logs(empty.path(), RaftLogLayout::Node).is_ok());
}
