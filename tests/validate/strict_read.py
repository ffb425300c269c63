"""Exit 0 when pyHanko's strict reader reads the PDF (trailer, catalog,
pages), 1 when it refuses it. Usage: strict_read.py FILE.pdf"""
import sys

from pyhanko.pdf_utils.reader import PdfFileReader

try:
    with open(sys.argv[1], "rb") as f:
        reader = PdfFileReader(f, strict=True)
        reader.root["/Pages"]
        reader.embedded_signatures
    sys.exit(0)
except Exception as e:  # any refusal: the file is too damaged for it
    print(f"pyHanko strict reader refuses: {type(e).__name__}: {e}")
    sys.exit(1)
