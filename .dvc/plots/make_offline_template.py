"""Build offline.html: DVC's plot page with vega, vega-lite and vega-embed inlined, no CDN.

`dvc plots show` loads these three scripts from cdn.jsdelivr.net, so without network every chart
stays blank. DVC accepts an HTML template (`plots.html_template` in .dvc/config); this one carries
the same versions DVC asks for, from npm, inside the page. Regenerate (needs npm) with:

    python .dvc/plots/make_offline_template.py
"""

import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}  # the versions dvc-render loads
HERE = Path(__file__).resolve().parent


def main() -> None:
    scripts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in PACKAGES.items():
            subprocess.run(["npm", "pack", f"{name}@{version}"], cwd=tmp, check=True, capture_output=True)
            with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as archive:
                code = archive.extractfile(f"package/build/{name}.min.js").read().decode()
                license_text = archive.extractfile("package/LICENSE").read().decode()
            scripts.append(f"<!-- {name}@{version} (npm), its license:\n{license_text}-->\n<script>{code}</script>")
    page = f"""<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <title>DVC Plot (offline)</title>
    {"".join(scripts)}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""
    (HERE / "offline.html").write_text(page)


if __name__ == "__main__":
    main()
