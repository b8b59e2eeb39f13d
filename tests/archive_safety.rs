//! Checking source archives before the build unpacks them: hostile entries
//! are refused with an error naming the entry; good archives pass whole.

mod common;

use common::tarball::{RawEntry as E, gz, raw_tar};
use pgha_image::archive::{self, ArchiveError};
use std::path::{Path, PathBuf};

struct Case {
    _tmp: tempfile::TempDir,
    archive: PathBuf,
}

fn case(bytes: Vec<u8>, name: &str) -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join(name);
    std::fs::write(&archive, bytes).unwrap();
    Case { _tmp: tmp, archive }
}

/// `check` refuses, naming `entry` and `reason`.
fn assert_refused(entries: &[E], entry: &str, reason: &str) {
    let c = case(gz(&raw_tar(entries)), "x.tar.gz");
    let err = archive::check(&c.archive).unwrap_err();
    match &err {
        ArchiveError::Unsafe {
            entry: e, reason: r, ..
        } => {
            assert_eq!(e, entry, "{err}");
            assert!(r.contains(reason), "{reason:?} not in {r:?}");
        }
        other => panic!("expected Unsafe, got {other:?}"),
    }
    assert!(err.to_string().contains(entry));
}

#[test]
fn absolute_paths_are_refused() {
    let target = tempfile::tempdir().unwrap();
    let abs = target.path().join("evil");
    let abs = abs.to_str().unwrap();
    assert_refused(&[E::Dir("top/"), E::File(abs, b"x")], abs, "absolute");
    assert!(!Path::new(abs).exists());
}

#[test]
fn parent_components_are_refused() {
    assert_refused(
        &[E::Dir("top/"), E::File("top/../../evil", b"x")],
        "top/../../evil",
        "`..`",
    );
    assert_refused(&[E::File("../evil", b"x")], "../evil", "`..`");
}

#[test]
fn symlinks_pointing_outside_are_refused() {
    assert_refused(
        &[E::Dir("top/"), E::Symlink("top/etc", "/etc")],
        "top/etc",
        "absolute",
    );
    assert_refused(
        &[E::Dir("top/"), E::Symlink("top/up", "../../outside")],
        "top/up",
        "outside",
    );
    assert_refused(&[E::Symlink("up", "..")], "up", "outside");
}

#[test]
fn writing_through_a_symlink_is_refused() {
    // top/root -> .. stays inside (it is the tree's root), but a file under it
    // would be written through the link.
    assert_refused(
        &[
            E::Dir("top/"),
            E::Symlink("top/root", ".."),
            E::File("top/root/x", b"x"),
        ],
        "top/root/x",
        "under a symbolic link",
    );
}

#[test]
fn links_that_escape_through_other_links_are_refused() {
    // top/d -> .. (the root); top/e -> d/.. is lexically top/, really outside.
    assert_refused(
        &[
            E::Dir("top/"),
            E::Symlink("top/d", ".."),
            E::Symlink("top/e", "d/.."),
        ],
        "top/e",
        "passes through a symbolic link",
    );
}

#[test]
fn hard_links_outside_the_tree_are_refused() {
    assert_refused(
        &[E::Dir("top/"), E::Hardlink("top/h", "/etc/passwd")],
        "top/h",
        "absolute",
    );
    assert_refused(
        &[E::Dir("top/"), E::Hardlink("top/h", "../etc/passwd")],
        "top/h",
        "outside",
    );
    assert_refused(
        &[
            E::Dir("top/"),
            E::Symlink("top/l", "."),
            E::Hardlink("top/h", "top/l/x"),
        ],
        "top/h",
        "passes through a symbolic link",
    );
}

#[test]
fn devices_and_fifos_are_refused() {
    assert_refused(
        &[E::Dir("top/"), E::Fifo("top/pipe")],
        "top/pipe",
        "unsupported type",
    );
}

#[test]
fn a_good_archive_passes_with_its_links() {
    let bytes = raw_tar(&[
        E::Dir("proj-1.0/"),
        E::Dir("proj-1.0/src/"),
        E::File("proj-1.0/src/a.c", b"int main(void) { return 0; }\n"),
        E::File("proj-1.0/Makefile", b"all:\n"),
        E::Symlink("proj-1.0/latest.c", "src/a.c"),
        E::Symlink("proj-1.0/src/up", "../Makefile"),
        E::Hardlink("proj-1.0/b.c", "proj-1.0/src/a.c"),
    ]);
    for (name, data) in [("p.tar", bytes.clone()), ("p.tar.gz", gz(&bytes))] {
        let c = case(data, name);
        let s = archive::check(&c.archive).unwrap();
        assert_eq!(s.top_level.as_deref(), Some("proj-1.0"));
        assert_eq!(s.entries, 7);
        assert_eq!(s.size, 29 + 5);
    }
}

#[test]
fn no_single_top_level_is_reported() {
    let bytes = raw_tar(&[E::File("a", b"1"), E::File("b", b"2")]);
    let c = case(bytes, "flat.tar");
    let s = archive::check(&c.archive).unwrap();
    assert_eq!(s.top_level, None);
    assert_eq!(s.entries, 2);
}

#[test]
fn garbage_is_not_an_archive() {
    let c = case(b"this is not a tarball at all".repeat(40), "junk.tar.gz");
    let err = archive::check(&c.archive).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::NotAnArchive { .. } | ArchiveError::Empty { .. }
        ),
        "{err:?}"
    );
}

// The build unpacks with `tar --strip-components=1`: what is inside the
// archive's tree may be outside the source once the top directory is gone.

#[test]
fn a_link_to_the_top_directory_is_outside_the_source_once_stripped() {
    // top/up -> .. is the archive's root; stripped, up -> .. leaves the source.
    assert_refused(
        &[E::Dir("top/"), E::File("top/a", b"x"), E::Symlink("top/up", "..")],
        "top/up",
        "once the build strips the top directory",
    );
    assert_refused(
        &[E::Dir("top/"), E::Dir("top/d/"), E::Symlink("top/d/r", "../..")],
        "top/d/r",
        "once the build strips the top directory",
    );
    // Out of the top directory and back in: lexically inside, really outside.
    assert_refused(
        &[
            E::Dir("top/"),
            E::File("top/b", b"x"),
            E::Symlink("top/a", "../top/b"),
        ],
        "top/a",
        "once the build strips the top directory",
    );
}

#[test]
fn entries_under_dot_slash_top_are_refused() {
    // GNU tar strips the `.`, leaving top/ in place.
    assert_refused(
        &[E::Dir("./top/"), E::File("./top/Makefile", b"all:\n")],
        "./top/",
        "starts with `./`",
    );
}

#[test]
fn hard_links_outside_the_stripped_source_are_refused() {
    assert_refused(
        &[
            E::Dir("top/"),
            E::File("top/f", b"x"),
            E::Hardlink("top/h", "top"),
        ],
        "top/h",
        "outside the source once the build strips",
    );
    assert_refused(
        &[
            E::Dir("top/"),
            E::File("top/f", b"x"),
            E::Hardlink("top/h", "./top/f"),
        ],
        "top/h",
        "outside the source once the build strips",
    );
}

#[test]
fn links_that_stay_inside_the_stripped_source_are_fine() {
    let bytes = raw_tar(&[
        E::Dir("top/"),
        E::Dir("top/d/"),
        E::File("top/f", b"x"),
        E::Symlink("top/d/up", ".."),
        E::Symlink("top/d/f", "../f"),
        E::Hardlink("top/d/h", "top/f"),
    ]);
    let c = case(gz(&bytes), "ok.tar.gz");
    let s = archive::check(&c.archive).unwrap();
    assert_eq!(s.top_level.as_deref(), Some("top"));
}

#[test]
fn compressed_garbage_is_bad_input_not_a_failure() {
    use pgha_image::error::{Diagnostic, ExitCode};
    let c = case(gz(&b"this is not a tarball at all".repeat(40)), "junk.tar.gz");
    let err = archive::check(&c.archive).unwrap_err();
    assert!(matches!(err, ArchiveError::NotAnArchive { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Usage);
    assert!(err.hint().unwrap().contains("url"));
}
