"""Generate the sample knowledge base's binary documents (PDF, DOCX, PPTX) from the text below.

Deterministic: the same bytes every run, so re-ingesting the samples changes nothing.
Usage: python samples/build.py [--check]
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "acme"
FIXED = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

REMOTE_WORK = [
    ("Remote Work Policy", None),
    ("1. Eligibility", "Employees who have completed their 90-day probation period may work remotely up to "
     "3 days per week. Roles that require on-site hardware access are excluded and are listed in the HR portal."),
    ("2. Equipment", "Northwind Relay provides a laptop, one external monitor and a headset. Employees may claim "
     "up to EUR 400 once every 3 years for home-office furniture, with an itemized receipt."),
    ("3. Working from abroad", "Working from another country is allowed for up to 20 working days per calendar "
     "year. Requests must be approved by People Operations at least 10 business days in advance, because of "
     "tax and immigration rules."),
    ("4. Security at home", "Remote work must use the company VPN for all internal systems. Do not work on "
     "confidential data on public Wi-Fi without the VPN, and lock the screen whenever you leave the device."),
    ("5. Core hours", "Remote employees are reachable during core hours, 10:00 to 15:00 in their team's "
     "primary time zone."),
]

SECURITY = [
    ("Information Security Policy", 0, None),
    ("Passwords", 1, "Passwords must be at least 14 characters long and unique to each system. Use the "
     "company password manager to generate and store them."),
    ("Multi-factor authentication", 1, "Multi-factor authentication (MFA) is mandatory for e-mail, source "
     "control, cloud consoles and the VPN. Hardware security keys are issued to engineers with production access."),
    ("Laptops", 1, "Laptop disks must be encrypted. A lost or stolen laptop must be reported to "
     "security@northwind-relay.example within 1 hour of discovering the loss."),
    ("Access reviews", 1, "Managers review their team's access to production systems every 90 days and "
     "remove access that is no longer needed."),
]

REVIEW = [
    ("Quarterly incident review Q3 2025", ["Northwind Relay reliability team", "Presented 2025-10-02"]),
    ("Incidents by severity", ["SEV1: 1 incident, 47 minutes of checkout downtime",
                               "SEV2: 3 incidents", "SEV3: 11 incidents"]),
    ("Mean time to recovery", ["MTTR for SEV1 and SEV2 fell from 62 minutes in Q2 to 38 minutes in Q3"]),
    ("Top follow-up", ["Automate renewal of every internal TLS certificate by 2025-12-31"]),
]


def build_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(FIXED)
    pdf.set_title("Remote Work Policy")
    pdf.set_author("Northwind Relay People Operations")
    for i, (heading, body) in enumerate(REMOTE_WORK):
        if i in (0, 3):
            pdf.add_page()
            pdf.set_font("helvetica", size=8)
            pdf.cell(0, 6, "Northwind Relay - Remote Work Policy - Internal", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", style="B", size=18 if body is None else 13)
        pdf.cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        if body:
            pdf.set_font("helvetica", size=11)
            pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    return bytes(pdf.output())


def _fixed_zip(data: bytes) -> bytes:
    """Rewrite an OOXML zip with fixed timestamps so its bytes never change between builds."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 5, 9, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def build_docx() -> bytes:
    import docx

    d = docx.Document()
    d.core_properties.created = FIXED.replace(tzinfo=None)
    d.core_properties.modified = FIXED.replace(tzinfo=None)
    d.core_properties.title = "Information Security Policy"
    for heading, level, body in SECURITY:
        d.add_heading(heading, level=level)
        if body:
            d.add_paragraph(body)
    t = d.add_table(rows=1, cols=2)
    t.rows[0].cells[0].text, t.rows[0].cells[1].text = "Data class", "Example"
    for a, b in [("Confidential", "customer payment data"), ("Internal", "roadmaps"), ("Public", "marketing site")]:
        row = t.add_row()
        row.cells[0].text, row.cells[1].text = a, b
    buf = io.BytesIO()
    d.save(buf)
    return _fixed_zip(buf.getvalue())


def build_pptx() -> bytes:
    from pptx import Presentation

    p = Presentation()
    p.core_properties.created = FIXED.replace(tzinfo=None)
    p.core_properties.modified = FIXED.replace(tzinfo=None)
    for i, (title, lines) in enumerate(REVIEW):
        slide = p.slides.add_slide(p.slide_layouts[0 if i == 0 else 1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = lines[0]
        for line in lines[1:]:
            body.add_paragraph().text = line
    buf = io.BytesIO()
    p.save(buf)
    return _fixed_zip(buf.getvalue())


TARGETS = {
    ROOT / "policies" / "remote-work-policy.pdf": build_pdf,
    ROOT / "policies" / "information-security-policy.docx": build_docx,
    ROOT / "incidents" / "q3-2025-incident-review.pptx": build_pptx,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="build only what is missing")
    args = ap.parse_args()
    for path, build in TARGETS.items():
        if args.check and path.exists():
            continue
        data = build()
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            print(f"wrote {path.relative_to(ROOT.parent)} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
