"""Screenshot regression: perceptual difference between a baseline and a new screenshot.

Screenshots arrive base64-encoded in the payload (``screenshot``, optionally
``baseline_screenshot``; otherwise the deliverable's latest earlier screenshot is the
baseline). Both are bounded in bytes and pixels before decoding. The difference is the
mean absolute grey-level difference of the two images scaled to 256 px wide, in percent;
the difference image is kept as an artifact.
"""

import base64
import binascii
import io

from PIL import Image, ImageChops, ImageOps

from gates.checks import ArtifactOut, CheckInput, CheckResult, register

MAX_IMAGE_BYTES = 5_000_000
MAX_PIXELS = 4096 * 4096
COMPARE_WIDTH = 256
# A 1 x 16M-pixel strip is within MAX_PIXELS but would scale to 256 x 4 billion: bound the
# comparison height too (a full-page screenshot 16 times taller than wide still fits).
MAX_COMPARE_HEIGHT = 4096


class ImageRejected(ValueError):
    pass


def decode(encoded: str, name: str) -> Image.Image:
    if not isinstance(encoded, str):
        raise ImageRejected(f"{name} must be a base64 string.")
    if len(encoded) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ImageRejected(f"{name} is larger than {MAX_IMAGE_BYTES} bytes.")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected(f"{name} is not valid base64.") from None
    try:
        image = Image.open(io.BytesIO(raw))
        width, height = image.size  # read from the header, before any pixel is decoded
        if width * height > MAX_PIXELS:
            raise ImageRejected(f"{name} is {width}x{height}; at most {MAX_PIXELS} pixels.")
        image.load()
    except ImageRejected:
        raise
    except Exception as exc:
        raise ImageRejected(f"{name} is not a readable image ({type(exc).__name__}).") from None
    return image


def _normalize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return ImageOps.grayscale(image.convert("RGB")).resize(size, Image.Resampling.BILINEAR)


def difference(baseline: Image.Image, current: Image.Image) -> tuple[float, Image.Image]:
    """Percent mean grey-level difference, and the (amplified) difference image."""
    height = round(COMPARE_WIDTH * baseline.height / max(1, baseline.width))
    height = min(MAX_COMPARE_HEIGHT, max(1, height))
    a = _normalize(baseline, (COMPARE_WIDTH, height))
    b = _normalize(current, (COMPARE_WIDTH, height))
    diff = ImageChops.difference(a, b)
    histogram = diff.histogram()
    total = sum(level * count for level, count in enumerate(histogram))
    percent = 100.0 * total / (255.0 * COMPARE_WIDTH * height)
    return percent, diff.point(lambda level: min(255, level * 4))


def _baseline(check_input: CheckInput) -> str | None:
    payload = check_input.event.payload
    if payload.get("baseline_screenshot"):
        return payload["baseline_screenshot"]
    for event in reversed(check_input.history):
        if event.payload.get("screenshot"):
            return event.payload["screenshot"]
    return None


@register("screenshot_regression")
def screenshot_regression(check_input: CheckInput) -> CheckResult:
    threshold = float(check_input.parameters.get("threshold_percent", 5.0))
    payload = check_input.event.payload
    if not payload.get("screenshot"):
        return CheckResult.errored("The event has no payload.screenshot.")
    baseline_encoded = _baseline(check_input)
    try:
        current = decode(payload["screenshot"], "screenshot")
        if baseline_encoded is None:
            return CheckResult.ok(note="No baseline yet: this screenshot becomes the baseline.")
        baseline = decode(baseline_encoded, "baseline screenshot")
    except ImageRejected as exc:
        return CheckResult.errored(str(exc))
    percent, diff_image = difference(baseline, current)
    details = {"difference_percent": round(percent, 2), "threshold_percent": threshold}
    if percent > threshold:
        buffer = io.BytesIO()
        diff_image.save(buffer, format="PNG")
        return CheckResult.fail(
            f"Screenshot differs from the baseline by {percent:.1f}% (threshold {threshold}%).",
            details=details,
            artifacts=[ArtifactOut("difference.png", "image/png", buffer.getvalue())],
        )
    return CheckResult(True, details=details)
