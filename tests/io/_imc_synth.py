"""Small synthetic IMC files: a ``.txt`` export and an ``.mcd`` (data block + UTF-16 XML schema, as readimc reads it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: (label, metal, mass) of the synthetic panel
PANEL = [("DNA1", "Ir", 191), ("CD68", "Nd", 146), ("PanCK", "Pt", 195)]


def imc_txt(path: Path, data: np.ndarray, panel=PANEL) -> Path:
    """Write ``data`` (c, y, x) as an IMC text export (one row per pixel, x fastest)."""
    c, h, w = data.shape
    cols = ["Start_push", "End_push", "Pushes_duration", "X", "Y", "Z"] + [f"{lab}({m}{n}Di)" for lab, m, n in panel[:c]]
    lines = ["\t".join(cols)]
    k = 0
    for y in range(h):
        for x in range(w):
            vals = [k * 10, k * 10 + 9, 10, x, y, 0] + [float(data[i, y, x]) for i in range(c)]
            lines.append("\t".join(str(v) for v in vals))
            k += 1
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def imc_mcd(path: Path, acquisitions: dict[int, np.ndarray], panel=PANEL, pixel_um: float = 1.0) -> Path:
    """Write acquisitions (id -> (c, y, x) array) as a minimal .mcd: float32 pixel records, then the XML schema."""
    blocks = []
    offset = 0
    meta = []
    for aid, data in acquisitions.items():
        c, h, w = data.shape
        yy, xx = np.mgrid[:h, :w]
        rec = np.column_stack([xx.ravel(), yy.ravel(), np.zeros(h * w)] + [data[i].ravel() for i in range(c)])
        raw = rec.astype("<f4").tobytes()
        meta.append((aid, c, h, w, offset, offset + len(raw)))
        blocks.append(raw)
        offset += len(raw)
    ns = "http://www.fluidigm.com/IMC/MCDSchema_V2_0.xsd"
    x = [f'<MCDSchema xmlns="{ns}">', "<Slide><ID>0</ID><Description>synthetic</Description></Slide>",
         "<Panorama><ID>1</ID><SlideID>0</SlideID><Type>Default</Type></Panorama>"]
    ch_id = 0
    for aid, c, h, w, start, end in meta:
        x.append(f"<AcquisitionROI><ID>{aid}</ID><PanoramaID>1</PanoramaID></AcquisitionROI>")
        x.append(f"<Acquisition><ID>{aid}</ID><Description>ROI_{aid:03d}</Description>"
                 f"<AcquisitionROIID>{aid}</AcquisitionROIID><DataStartOffset>{start}</DataStartOffset>"
                 f"<DataEndOffset>{end}</DataEndOffset><ValueBytes>4</ValueBytes><MaxX>{w}</MaxX><MaxY>{h}</MaxY>"
                 f"<AblationDistanceBetweenShotsX>{pixel_um}</AblationDistanceBetweenShotsX>"
                 f"<AblationDistanceBetweenShotsY>{pixel_um}</AblationDistanceBetweenShotsY></Acquisition>")
        names = [("X", "X"), ("Y", "Y"), ("Z", "Z")] + [(f"{m}({n})", lab) for lab, m, n in panel[:c]]
        for order, (name, label) in enumerate(names):
            x.append(f"<AcquisitionChannel><ID>{ch_id}</ID><AcquisitionID>{aid}</AcquisitionID>"
                     f"<OrderNumber>{order}</OrderNumber><ChannelName>{name}</ChannelName>"
                     f"<ChannelLabel>{label}</ChannelLabel></AcquisitionChannel>")
            ch_id += 1
    x.append("</MCDSchema>")
    Path(path).write_bytes(b"".join(blocks) + "".join(x).encode("utf-16-le"))
    return Path(path)
