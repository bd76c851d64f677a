"""Write a placeholder stage notebook (frame only; each stage issue replaces it).

Usage: python scripts/make_placeholder_notebook.py NN_name "Title"
"""
import sys
from pathlib import Path

import nbformat as nbf

name, title = sys.argv[1], sys.argv[2]
nb = nbf.v4.new_notebook()
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
params = nbf.v4.new_code_cell(
    "# Parameters (papermill injects the study configuration's values below this cell)\n"
    "seed = 0\nbids_dir = 'datasets/simulated'\nderivatives_dir = 'datasets/simulated/derivatives/ketamine-cbf'\n"
    "output_dir = 'datasets/simulated/derivatives/ketamine-cbf/" + name.split('_', 1)[1] + "'\n"
    "config_name = 'default'"
)
params.metadata["tags"] = ["parameters"]
nb.cells = [
    nbf.v4.new_markdown_cell(f"# {title}\n\nThis stage is not built yet (placeholder frame)."),
    params,
    nbf.v4.new_code_cell(
        "from pathlib import Path\nfrom ketamine_cbf import provenance\n"
        "provenance.write_json(Path(output_dir) / 'placeholder.json', {'stage': '" + name + "', 'seed': seed})\n"
        "print('placeholder written to', output_dir)"
    ),
]
out = Path("notebooks") / f"{name}.ipynb"
nbf.write(nb, out)
print("wrote", out)
