"""PDF: text per page and "pages" metadata; corrupt, truncated and encrypted files are skipped with a reason."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from llmops_cli.core.loaders import SkipSource, discover, load_source

MAX = 1 << 20


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF (Helvetica text, one line per page) with a correct cross-reference table."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects = {
        1: "<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>",
        3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, text in zip(page_ids, pages, strict=False):
        stream = f"BT /F1 12 Tf 72 720 Td ({escape(text)}) Tj ET"
        objects[page_id] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        )
        objects[page_id + 1] = f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream"
    info_id = None
    if title:
        info_id = max(objects) + 1
        objects[info_id] = f"<< /Title ({escape(title)}) >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for object_id in sorted(objects):
        offsets[object_id] = len(out)
        out += f"{object_id} 0 obj\n{objects[object_id]}\nendobj\n".encode("latin-1")
    xref_at, size = len(out), max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offsets[i]:010d} 00000 n \n" for i in range(1, size)).encode()
    info = f" /Info {info_id} 0 R" if info_id else ""
    out += f"trailer\n<< /Size {size} /Root 1 0 R{info} >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)


def load(path: Path):
    files, _ = discover([path], None, [])
    return load_source(files[0], max_bytes=MAX)


def test_pdf_text_pages_and_title(tmp_path: Path):
    path = tmp_path / "manual.pdf"
    path.write_bytes(make_pdf(["Airflow schedules DAG runs.", "Page two (with parentheses)."], title="The Manual"))
    [doc] = load(path)
    assert doc.format == "pdf" and doc.source_id == "manual.pdf"
    assert doc.text == "Airflow schedules DAG runs.\n\nPage two (with parentheses)."
    assert doc.metadata == {
        "source": "manual.pdf",
        "path": str(path),
        "format": "pdf",
        "pages": 2,
        "title": "The Manual",
    }


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"%PDF-1.4\nthis is not really a pdf\n%%EOF\n", "corrupt PDF: "),
        (b"plain words in a file named .pdf", "corrupt PDF: "),
        (None, "corrupt PDF: "),  # a valid PDF cut in half
    ],
)
def test_corrupt_pdf_is_skipped(tmp_path: Path, content: bytes | None, reason: str, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "bad.pdf"
    whole = make_pdf(["some text"])
    path.write_bytes(content if content is not None else whole[: len(whole) // 2])
    with pytest.raises(SkipSource) as raised:
        load(path)
    assert raised.value.reason.startswith(reason)
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]  # the reason is the only message


def test_encrypted_pdf_is_skipped_unless_it_opens_without_a_password(tmp_path: Path):
    from pypdf import PdfWriter

    def encrypted(user_password: str) -> bytes:
        writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["secret text"])))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
        buffer = io.BytesIO()
        writer.write(buffer)
        return buffer.getvalue()

    (tmp_path / "locked.pdf").write_bytes(encrypted("hunter2"))
    with pytest.raises(SkipSource, match="encrypted PDF"):
        load(tmp_path / "locked.pdf")
    (tmp_path / "owner-only.pdf").write_bytes(encrypted(""))
    assert load(tmp_path / "owner-only.pdf")[0].text == "secret text"


def test_pdf_without_text_is_skipped(tmp_path: Path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(["", ""]))
    with pytest.raises(SkipSource, match="no extractable text"):
        load(path)
