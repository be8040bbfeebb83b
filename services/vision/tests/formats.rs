//! Photo formats other than the fixtures' JPEG and PNG, on real files made by maintained
//! encoders (`tests/data/`, see its README.md): WebP (cwebp: lossy, lossless, alpha, EXIF
//! orientation) decodes; a cut or lying WebP is a typed error; an oversized WebP header is
//! refused before its pixels are allocated; HEIC (heif-enc) and AVIF (avifenc) are refused by
//! name with what to do.
//!
//! No model is needed here (the embeddings of WebP photos are compared in `fixtures.rs`), but
//! the JPEG sources of the test files come from the fixtures: this test fails, it does not
//! skip, without them.

use rollcall_domain::photo::PhotoFormat;
use rollcall_domain::Frame;
use rollcall_testkit::fixture;
use rollcall_vision::decode::{decode_bytes, decode_file, DecodeLimits};
use rollcall_vision::VisionError;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

/// Records the largest single allocation made by the current thread while tracking is on.
struct LargestAllocation;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: LargestAllocation = LargestAllocation;

/// `f`'s result and the largest single allocation it made (on this thread).
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGEST.with(|l| l.get()))
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn decode(name: &str) -> Frame {
    decode_file(&data(name), &DecodeLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Mean of each channel.
fn mean_rgb(f: &Frame) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for px in f.rgb().chunks_exact(3) {
        for (s, v) in sum.iter_mut().zip(px) {
            *s += *v as f64;
        }
    }
    let n = (f.width() as f64) * (f.height() as f64);
    sum.map(|s| s / n)
}

/// Mean absolute difference per channel value of two frames of the same size.
fn mean_abs_diff(a: &Frame, b: &Frame) -> f64 {
    assert_eq!((a.width(), a.height()), (b.width(), b.height()));
    let total: u64 = a
        .rgb()
        .iter()
        .zip(b.rgb())
        .map(|(x, y)| x.abs_diff(*y) as u64)
        .sum();
    total as f64 / a.rgb().len() as f64
}

#[test]
fn webp_photos_decode_to_rgb_like_their_sources() {
    // lossy (VP8), 313x600, from faces/obama/2.jpg (626x1200)
    let webp = decode("obama_2.webp");
    assert_eq!((webp.width(), webp.height()), (313, 600));
    let jpeg = decode_file(&fixture("faces/obama/2.jpg"), &DecodeLimits::default()).unwrap();
    let (a, b) = (mean_rgb(&webp), mean_rgb(&jpeg));
    for (c, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() < 4.0,
            "channel {c}: WebP mean {x:.1}, JPEG mean {y:.1} (channels swapped or colours wrong?)"
        );
    }
    // the photo is not grey: a decoder that gave up would give a flat frame
    assert!((a[0] - a[2]).abs() > 5.0, "{a:?}");
    // lossless (VP8L), 120 px tall from faces/kit_harington/2.jpg (630x374)
    let lossless = decode("kit_harington_2_lossless.webp");
    assert_eq!(lossless.height(), 120);
    assert!(
        (200..=203).contains(&lossless.width()),
        "{}",
        lossless.width()
    );
    // extended (VP8X) with an alpha channel (a transparent 12-px border): RGB, alpha dropped
    let alpha = decode("alex_lacamoire_1_alpha.webp");
    assert_eq!((alpha.width(), alpha.height()), (270, 250));
    assert_eq!(alpha.rgb().len(), 270 * 250 * 3);
}

#[test]
fn webp_exif_orientation_is_applied() {
    // The same photo stored turned a quarter left, with EXIF orientation 6 ("turn it right to
    // view"): decoded upright, it matches the plain file pixel for pixel (up to coding noise).
    let upright = decode("obama_2.webp");
    let tagged = decode("obama_2_exif_rotated.webp");
    assert_eq!((tagged.width(), tagged.height()), (313, 600));
    let d = mean_abs_diff(&upright, &tagged);
    assert!(
        d < 4.0,
        "mean difference {d:.2} per value: orientation not applied as tagged"
    );
    // the check can tell: the same frame turned the wrong way round differs a lot
    let flipped: Vec<u8> = tagged
        .rgb()
        .chunks_exact(3)
        .rev()
        .flatten()
        .copied()
        .collect();
    let flipped = Frame::from_rgb(313, 600, flipped).unwrap();
    assert!(mean_abs_diff(&upright, &flipped) > 20.0);
}

#[test]
fn a_cut_webp_is_a_corrupt_image_error() {
    for name in [
        "obama_2.webp",
        "kit_harington_2_lossless.webp",
        "alex_lacamoire_1_alpha.webp",
        "obama_2_exif_rotated.webp",
    ] {
        let full = bytes(name);
        assert!(decode_bytes(&full, &DecodeLimits::default()).is_ok());
        for cut in [16, 40, full.len() / 3, full.len() / 2, full.len() - 1] {
            let e = decode_bytes(&full[..cut], &DecodeLimits::default()).unwrap_err();
            assert!(
                matches!(&e, VisionError::CorruptImage(m) if m.contains("truncated WebP")),
                "{name} cut at {cut}: {e}"
            );
        }
    }
}

#[test]
fn damaged_webp_bytes_give_an_error_or_a_frame_never_a_panic() {
    for name in ["obama_2.webp", "kit_harington_2_lossless.webp"] {
        let full = bytes(name);
        let mut errors = 0;
        for i in (20..full.len()).step_by(97) {
            let mut b = full.clone();
            b[i] ^= 0x5A;
            b[(i * 7) % full.len()] ^= 0xFF;
            match decode_bytes(&b, &DecodeLimits::default()) {
                Ok(f) => assert!(f.width() > 0 && f.height() > 0),
                Err(_) => errors += 1,
            }
        }
        // lossless coding is fragile: damage there must have been noticed at least once
        if name.contains("lossless") {
            assert!(errors > 0, "{name}: no damage detected");
        }
    }
}

/// A copy of `file` with `patch` written at `at`.
fn patched(file: &str, at: usize, patch: &[u8]) -> Vec<u8> {
    let mut b = bytes(file);
    b[at..at + patch.len()].copy_from_slice(patch);
    b
}

#[test]
fn an_oversized_webp_header_is_refused_before_its_pixels_are_allocated() {
    // Tracking works: decoding the real 313x600 photo allocates at least its RGB frame.
    let (ok, largest) =
        largest_allocation(|| decode_bytes(&bytes("obama_2.webp"), &DecodeLimits::default()));
    ok.unwrap();
    assert!(largest >= 313 * 600 * 3, "largest allocation {largest}");

    let limit = 1 << 20;
    // lossy: the VP8 frame header (at 26: 14-bit width, 14-bit height) says 16383x16383
    let vp8 = patched("obama_2.webp", 26, &[0xFF, 0x3F, 0xFF, 0x3F]);
    // lossless: the VP8L header (at 21: width-1 and height-1 in 14 bits each) says 16383x16383
    let vp8l = patched(
        "kit_harington_2_lossless.webp",
        21,
        &[0xFE, 0xBF, 0xFF, 0x0F],
    );
    // extended: the VP8X canvas (at 24: width-1, height-1 in 24 bits each) says 16000x16000
    let vp8x = patched(
        "obama_2_exif_rotated.webp",
        24,
        &[0x7F, 0x3E, 0x00, 0x7F, 0x3E, 0x00],
    );
    for (what, b) in [("VP8", vp8), ("VP8L", vp8l), ("VP8X", vp8x)] {
        let (r, largest) = largest_allocation(|| decode_bytes(&b, &DecodeLimits::default()));
        let e = r.unwrap_err();
        assert!(
            matches!(e, VisionError::ImageTooLarge { width, height, .. } if width >= 16_000 && height >= 16_000),
            "{what}: {e}"
        );
        assert!(
            largest < limit,
            "{what}: allocated {largest} bytes before refusing"
        );
    }
    // the real photo under a smaller pixel limit: refused on its header too
    let small = DecodeLimits {
        max_pixels: 100_000,
        ..Default::default()
    };
    let (r, largest) = largest_allocation(|| decode_bytes(&bytes("obama_2.webp"), &small));
    assert!(
        matches!(
            r,
            Err(VisionError::ImageTooLarge {
                width: 313,
                height: 600,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(
        largest < 313 * 600,
        "allocated {largest} bytes before refusing"
    );
}

#[test]
fn a_webp_chunk_declaring_more_than_the_file_holds_is_refused_without_allocating_it() {
    // The EXIF chunk of obama_2_exif_rotated.webp declares 2 GB: the decoder would allocate
    // that much to read it (for the orientation) before finding the file too short.
    let mut b = bytes("obama_2_exif_rotated.webp");
    let at = b
        .windows(4)
        .position(|w| w == b"EXIF")
        .expect("an EXIF chunk");
    b[at + 4..at + 8].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    // keep the RIFF size consistent with the claim, as an attacker would
    let riff = (b.len() as u32 - 8).wrapping_add(0x7FFF_0000);
    b[4..8].copy_from_slice(&riff.to_le_bytes());
    let (r, largest) = largest_allocation(|| decode_bytes(&b, &DecodeLimits::default()));
    let e = r.unwrap_err();
    assert!(matches!(e, VisionError::CorruptImage(_)), "{e}");
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    // and with the RIFF size left as it was: the chunk reaches past its container
    let mut b = bytes("obama_2_exif_rotated.webp");
    b[at + 4..at + 8].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    let (r, largest) = largest_allocation(|| decode_bytes(&b, &DecodeLimits::default()));
    let e = r.unwrap_err();
    assert!(
        matches!(&e, VisionError::CorruptImage(m) if m.contains("EXIF chunk")),
        "{e}"
    );
    assert!(largest < 1 << 20, "allocated {largest} bytes");
}

#[test]
fn heic_and_avif_photos_are_refused_by_name_with_what_to_do() {
    for (name, format) in [
        ("biden_2.heic", PhotoFormat::Heic),
        ("biden_2.avif", PhotoFormat::Avif),
    ] {
        assert_eq!(PhotoFormat::sniff(&bytes(name)), format, "{name}");
        let e = decode_file(&data(name), &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(e, VisionError::NeedsConversion { format: f } if f == format),
            "{name}: {e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "{} photo: not supported; export it as JPEG or WebP",
                format.name()
            )),
            "{msg}"
        );
    }
    // the iPhone's format gets the iPhone's setting
    let e = decode_file(&data("biden_2.heic"), &DecodeLimits::default()).unwrap_err();
    assert!(e.to_string().contains("Most Compatible"), "{e}");
    // a cut HEIC is still named (the brand is in the first bytes)
    let heic = bytes("biden_2.heic");
    assert!(matches!(
        decode_bytes(&heic[..64], &DecodeLimits::default()),
        Err(VisionError::NeedsConversion {
            format: PhotoFormat::Heic
        })
    ));
}
