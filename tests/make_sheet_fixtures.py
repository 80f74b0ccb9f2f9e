"""Make the committed workbook fixtures that Python libraries cannot write (run by hand, not by the tests).

- saved_by_libreoffice.xlsx: the untidy workbook opened and saved by LibreOffice, so its formulas carry
  saved results, as in every file that Excel or LibreOffice saves (openpyxl writes formulas without them).
- old_format.xls: the same workbook in the old Excel format.
- password.xlsx: a workbook protected with the password 'secret' (Office's encryption, by msoffcrypto-tool).

Needs LibreOffice (Debian: libreoffice-calc-nogui) and msoffcrypto-tool; neither the app nor CI needs them.
    python tests/make_sheet_fixtures.py
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sheet_builders import untidy_xlsx  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def convert(source: Path, extension: str, out: Path) -> Path:
    subprocess.run(["soffice", "--headless", "--convert-to", extension, "--outdir", str(out), str(source)],
                   check=True, capture_output=True, timeout=300)
    return out / f"{source.stem}.{extension}"


def main() -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        book = untidy_xlsx(tmp / "untidy.xlsx")
        ods = convert(book, "ods", tmp / "ods")  # through .ods, so the .xlsx is LibreOffice's own writing
        shutil.copy(convert(ods, "xlsx", tmp / "xlsx"), DATA / "saved_by_libreoffice.xlsx")
        shutil.copy(convert(book, "xls", tmp / "xls"), DATA / "old_format.xls")
        with (DATA / "saved_by_libreoffice.xlsx").open("rb") as plain, (DATA / "password.xlsx").open("wb") as out:
            document = OOXMLFile(plain)
            document.encrypt("secret", out)


if __name__ == "__main__":
    main()
