"""wick's image decoding and preprocessing (src/vision/) against the Python pipeline that
TorchServe's image_classifier runs: PIL's Image.open().convert() and resize(BILINEAR) must
give identical bytes; torchvision's Resize/CenterCrop/ToTensor/Normalize (reimplemented
below with PIL + torch, as torchvision is not installed here) must agree within 1e-6.
Runs the tests/tools/wkimg helper: WICK_IMG_TOOL, else build/wkimg. Images are made here."""
import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TOOL = os.environ.get("WICK_IMG_TOOL", str(ROOT / "build" / "wkimg"))
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


@pytest.fixture(scope="module", autouse=True)
def tool():
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"the wkimg tool is missing at {TOOL}: build the 'wkimg' target "
                    "or set WICK_IMG_TOOL", pytrace=False)


def run_tool(tmp_path, data, *args, scalar=False):
    f = tmp_path / "img"
    f.write_bytes(data)
    env = dict(os.environ, WKIMG_SCALAR="1" if scalar else "0")
    return subprocess.run([TOOL, args[0], str(f), *map(str, args[1:])], capture_output=True,
                          env=env)


def tool_ok(tmp_path, data, *args, scalar=False):
    p = run_tool(tmp_path, data, *args, scalar=scalar)
    assert p.returncode == 0, p.stderr.decode()
    head, body = p.stdout.split(b"\n", 1)
    return [int(x) for x in head.split()], body


def decode(tmp_path, data, channels):
    (w, h, c), body = tool_ok(tmp_path, data, "decode", channels)
    return np.frombuffer(body, np.uint8).reshape(h, w, c)


def pil_decode(data, channels):
    a = np.asarray(Image.open(io.BytesIO(data)).convert("RGB" if channels == 3 else "L"))
    return a.reshape(a.shape[0], a.shape[1], channels)


# ---- a small PNG writer: every color type, bit depth, tRNS and Adam7 interlacing ----------

NCH = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def _chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))


def _pack(rows, bits):
    h = rows.shape[0]
    if bits == 16:
        return rows.astype(">u2").view(np.uint8).reshape(h, -1)
    if bits == 8:
        return rows.astype(np.uint8)
    per = 8 // bits
    pad = (-rows.shape[1]) % per
    r = np.concatenate([rows, np.zeros((h, pad), rows.dtype)], 1).astype(np.uint8)
    r = r.reshape(h, -1, per)
    out = np.zeros(r.shape[:2], np.uint8)
    for i in range(per):
        out |= (r[:, :, i] << (8 - bits * (i + 1))).astype(np.uint8)
    return out


def make_png(a, color_type, bits, palette=None, trns=None, interlace=False, sub_filter=False):
    h, w = a.shape[:2]
    a = a.reshape(h, w, NCH[color_type])
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, color_type,
                                                               0, 0, int(interlace)))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    raw = bytearray()
    bpp = max(1, bits * NCH[color_type] // 8)
    for x0, y0, dx, dy in (ADAM7 if interlace else [(0, 0, 1, 1)]):
        sub = a[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for r in _pack(sub.reshape(sub.shape[0], -1), bits):
            if sub_filter:
                r = r.astype(np.int32)
                prev = np.concatenate([np.zeros(bpp, np.int32), r[:-bpp]])
                raw += b"\x01" + ((r - prev) & 255).astype(np.uint8).tobytes()
            else:
                raw += b"\x00" + r.tobytes()
    return out + _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + _chunk(b"IEND", b"")


def pil_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def noise(rng, h, w, c, hi=256):
    """Random pixels over a smooth gradient: both rounding-heavy and image-like."""
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 3 + y * 5)[..., None] % hi
    return ((base + rng.integers(0, hi, size=(h, w, c))) % hi).astype(np.int64)


# ---- decode -----------------------------------------------------------------------------

PNG_CASES = [(ct, bits, il) for ct, depths in
             [(0, (1, 2, 4, 8, 16)), (2, (8, 16)), (3, (1, 2, 4, 8)), (4, (8, 16)), (6, (8, 16))]
             for bits in depths for il in (False, True)]


@pytest.mark.parametrize("ct,bits,interlace", PNG_CASES)
def test_png_decode_matches_pil(tmp_path, ct, bits, interlace):
    rng = np.random.default_rng(ct * 100 + bits)
    h, w = 13, 11
    if ct == 3:
        pal = rng.integers(0, 256, size=(min(1 << bits, 200), 3))
        a = rng.integers(0, min(1 << bits, 256), size=(h, w))  # some indices past PLTE
        data = make_png(a, 3, bits, palette=pal, trns=bytes([0, 77, 255]), interlace=interlace)
    else:
        a = rng.integers(0, 1 << bits, size=(h, w, NCH[ct]))
        if bits == 16 and ct == 0:
            a[::2] %= 300  # PIL clips 16-bit gray ("I") to 0..255: cover both sides
        data = make_png(a, ct, bits, interlace=interlace, sub_filter=bits >= 8)
    for channels in (3, 1):
        np.testing.assert_array_equal(decode(tmp_path, data, channels), pil_decode(data, channels))


def test_png_sizes_and_trns_on_rgb(tmp_path):
    rng = np.random.default_rng(5)
    for h, w in [(1, 1), (1, 9), (9, 1), (2, 3), (17, 33)]:
        a = noise(rng, h, w, 3)
        data = make_png(a, 2, 8, trns=struct.pack(">HHH", 1, 2, 3), interlace=(h * w) % 2 == 1)
        for channels in (3, 1):
            np.testing.assert_array_equal(decode(tmp_path, data, channels),
                                          pil_decode(data, channels))


JPEG_CASES = [("RGB", 0), ("RGB", 1), ("RGB", 2), ("L", 0), ("RGB-progressive", 2), ("CMYK", 0)]


@pytest.mark.parametrize("mode,subsampling", JPEG_CASES)
def test_jpeg_decode_matches_pil(tmp_path, mode, subsampling):
    rng = np.random.default_rng(7)
    for h, w in [(1, 1), (23, 37), (64, 48), (101, 7)]:
        base = mode.split("-")[0]
        c = {"RGB": 3, "L": 1, "CMYK": 4}[base]
        a = noise(rng, h, w, c).astype(np.uint8)
        im = Image.fromarray(a.reshape(h, w) if c == 1 else a, base)
        data = pil_bytes(im, "JPEG", quality=87, subsampling=subsampling,
                         progressive=mode.endswith("progressive"))
        for channels in (3, 1):
            np.testing.assert_array_equal(decode(tmp_path, data, channels),
                                          pil_decode(data, channels))


def test_not_an_image(tmp_path):
    for data in [b"", b"hello world", b"GIF89a" + b"\0" * 20, b"\x89PNG", b"\xff\xd8"]:
        p = run_tool(tmp_path, data, "decode", 3)
        assert p.returncode != 0
        assert b"expected a JPEG or PNG image" in p.stderr


def test_truncated_images_refused(tmp_path):
    rng = np.random.default_rng(9)
    a = noise(rng, 64, 80, 3).astype(np.uint8)
    png = make_png(a, 2, 8)
    jpg = pil_bytes(Image.fromarray(a), "JPEG", quality=90)
    prog = pil_bytes(Image.fromarray(a), "JPEG", quality=90, progressive=True)
    for data in (png, jpg, prog):
        for cut in (len(data) // 3, len(data) // 2, len(data) - 20):
            p = run_tool(tmp_path, data[:cut], "decode", 3)
            assert p.returncode != 0, cut
            assert b"truncated or corrupt" in p.stderr
    bad_crc = bytearray(png)
    bad_crc[40] ^= 0xFF  # inside the IDAT data
    assert run_tool(tmp_path, bytes(bad_crc), "decode", 3).returncode != 0


def test_pixel_limit_from_header(tmp_path):
    # headers that promise 10000x10000 pixels, with no pixel data behind them
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 10000, 8, 2,
                                                               0, 0, 0))
    jpg = bytearray(pil_bytes(Image.new("RGB", (8, 8)), "JPEG"))
    sof = jpg.find(b"\xff\xc0")
    jpg[sof + 5:sof + 9] = struct.pack(">HH", 10000, 10000)
    for data in (png, bytes(jpg)):
        p = run_tool(tmp_path, data, "decode", 3)
        assert p.returncode != 0
        assert (b"image is 10000x10000 = 100000000 pixels, over the limit of 89478485 "
                b"(limit_max_image_pixels)") in p.stderr
    small = make_png(np.zeros((10, 10, 3), np.int64), 2, 8)
    p = run_tool(tmp_path, small, "decode", 3, 99)
    assert b"over the limit of 99" in p.stderr
    assert run_tool(tmp_path, small, "decode", 3, 100).returncode == 0


# ---- resize -----------------------------------------------------------------------------

RESIZES = [((1, 1), (256, 256)), ((3, 2), (384, 256)), ((2, 3), (5, 1)), ((1000, 7), (36571, 256)),
           ((7, 1000), (256, 36571)), ((1000, 7), (3, 2)), ((640, 480), (341, 256)),
           ((257, 255), (258, 256)), ((31, 17), (470, 256)), ((300, 200), (300, 113)),
           ((300, 200), (77, 200)), ((500, 375), (224, 224)), ((97, 89), (13, 241))]


@pytest.mark.parametrize("src,dst", RESIZES)
@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("scalar", [False, True], ids=["simd", "scalar"])
def test_resize_identical_to_pil(tmp_path, src, dst, mode, scalar):
    rng = np.random.default_rng(src[0] * 31 + src[1])
    c = 3 if mode == "RGB" else 1
    a = noise(rng, src[1], src[0], c).astype(np.uint8)
    data = make_png(a, 2 if c == 3 else 0, 8)
    (dw, dh, cc), body = tool_ok(tmp_path, data, "resize", c, dst[0], dst[1], scalar=scalar)
    got = np.frombuffer(body, np.uint8).reshape(dh, dw, cc)
    want = np.asarray(Image.open(io.BytesIO(data)).convert(mode).resize(dst, Image.BILINEAR))
    np.testing.assert_array_equal(got, want.reshape(dh, dw, c))


# ---- the whole pipeline against torchvision's transforms ---------------------------------

def torchvision_like(im, resize, crop, mean, std):
    """transforms.Resize(resize) / Resize((h, w)), CenterCrop(crop), ToTensor, Normalize,
    written out as torchvision 0.14 computes them for a PIL image."""
    if isinstance(resize, tuple):
        im = im.resize((resize[1], resize[0]), Image.BILINEAR)
    elif resize:
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = resize, int(resize * long / short)
        size = (new_short, new_long) if w <= h else (new_long, new_short)
        if size != im.size:
            im = im.resize(size, Image.BILINEAR)
    a = np.asarray(im)
    if a.ndim == 2:
        a = a[..., None]
    if crop:
        ch, cw = crop
        h, w = a.shape[:2]
        if cw > w or ch > h:
            pl, pt = (cw - w) // 2 if cw > w else 0, (ch - h) // 2 if ch > h else 0
            pr, pb = (cw - w + 1) // 2 if cw > w else 0, (ch - h + 1) // 2 if ch > h else 0
            a = np.pad(a, ((pt, pb), (pl, pr), (0, 0)))
            h, w = a.shape[:2]
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        a = a[top:top + ch, left:left + cw]
    t = torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    m = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return t.sub_(m).div_(s).numpy()


def run_pipeline(tmp_path, data, channels, resize, crop, mean, std):
    rs = f"{resize[0]},{resize[1]}" if isinstance(resize, tuple) else resize
    ch, cw = crop if crop else (0, 0)
    m = list(mean) + [0.0] * (3 - len(mean))
    s = list(std) + [1.0] * (3 - len(std))
    (c, h, w), body = tool_ok(tmp_path, data, "preprocess", channels, rs, ch, cw, *m, *s)
    return np.frombuffer(body, np.float32).reshape(c, h, w)


PIPELINE_SIZES = [(640, 480), (480, 640), (1, 1), (3, 2), (1000, 7), (7, 1000), (224, 224),
                  (256, 256), (255, 300), (301, 257), (500, 375), (28, 28), (227, 1229)]


@pytest.mark.parametrize("size", PIPELINE_SIZES)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_pipeline_matches_torchvision(tmp_path, size, mode):
    rng = np.random.default_rng(size[0] * 7 + size[1])
    c = 3 if mode == "RGB" else 1
    a = noise(rng, size[1], size[0], c).astype(np.uint8)
    data = make_png(a, 2 if c == 3 else 0, 8)
    mean, std = (MEAN, STD) if c == 3 else ([0.5], [0.25])
    got = run_pipeline(tmp_path, data, c, 256, (224, 224), mean, std)
    want = torchvision_like(Image.open(io.BytesIO(data)).convert(mode), 256, (224, 224), mean, std)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size,resize,crop", [
    ((28, 28), 0, (32, 30)),        # crop larger than the image: zero padding
    ((227, 229), 0, (224, 224)),    # odd margins: Python's round() goes to even
    ((231, 233), 0, (224, 224)),
    ((28, 28), 0, None),            # no resize, no crop
    ((50, 40), (20, 30), (21, 25)), # Resize((h, w)) then a crop larger on one side
    ((640, 480), 256, None),        # resize only
    ((640, 480), (480, 640), (7, 9)),
])
def test_pipeline_options(tmp_path, size, resize, crop):
    rng = np.random.default_rng(3)
    a = noise(rng, size[1], size[0], 3).astype(np.uint8)
    data = make_png(a, 2, 8)
    got = run_pipeline(tmp_path, data, 3, resize, crop, MEAN, STD)
    want = torchvision_like(Image.open(io.BytesIO(data)).convert("RGB"), resize, crop, MEAN, STD)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fmt", ["jpeg420", "jpeg444", "jpeg-gray", "png-rgba", "png-palette",
                                 "png-16"])
def test_pipeline_from_real_formats(tmp_path, fmt):
    rng = np.random.default_rng(11)
    h, w = 333, 517
    a = noise(rng, h, w, 4).astype(np.uint8)
    if fmt.startswith("jpeg"):
        im = Image.fromarray(a[..., 0], "L") if fmt == "jpeg-gray" else Image.fromarray(a[..., :3])
        data = pil_bytes(im, "JPEG", quality=85, subsampling=0 if fmt == "jpeg444" else 2)
    elif fmt == "png-rgba":
        data = pil_bytes(Image.fromarray(a, "RGBA"), "PNG")
    elif fmt == "png-palette":
        data = pil_bytes(Image.fromarray(a[..., :3]).quantize(200), "PNG", transparency=3)
    else:
        data = make_png(a[..., :3].astype(np.int64) * 257, 2, 16)
    for mode, c in (("RGB", 3), ("L", 1)):
        mean, std = (MEAN, STD) if c == 3 else ([0.5], [0.25])
        got = run_pipeline(tmp_path, data, c, 256, (224, 224), mean, std)
        want = torchvision_like(Image.open(io.BytesIO(data)).convert(mode), 256, (224, 224),
                                mean, std)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
