"""The longest dataset line worth reading, derived from the model table.

No model trains on more than its `max_tokens_per_example` tokens of one example, and no token
of Burro's vocabularies (o200k_base, cl100k_base) is longer than `LONGEST_TOKEN_BYTES` bytes of
text; JSON at most doubles text by escaping it (`\\n`, `\\"`, `\\\\`; the six-byte `\\u00XX` form is
only for control characters, one or two to a token). A line longer than the largest limit
times both cannot fit any model: it is refused as `line_too_long` without being buffered,
decoded or tokenized, so its length never turns into memory. With today's table (65,536
tokens) that is 16 MiB.

Inline base64 images count a fixed number of tokens whatever their size, so an example with
large inline images can exceed this: such examples should reference their images by URL.
"""

from __future__ import annotations

from service.models import ModelTable

LONGEST_TOKEN_BYTES = 128
JSON_BYTES_PER_TEXT_BYTE = 2
_FALLBACK_LIMIT = 65_536  # an empty table (never shipped) still gets a bound


def longest_useful_line(models: ModelTable) -> int:
    """Bytes of the longest line that some model in `models` could still train on."""
    limit = max((m.max_tokens_per_example for m in models), default=_FALLBACK_LIMIT)
    return limit * LONGEST_TOKEN_BYTES * JSON_BYTES_PER_TEXT_BYTE
