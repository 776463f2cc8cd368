"""Build every lab notebook from its text source in notebooks/source/.

    python generate_notebooks.py            # notebooks/solutions/ and notebooks/student/
    python generate_notebooks.py --check    # exit 1 if a committed notebook is out of date
    python generate_notebooks.py --repo https://github.com/you/labkit --ref fall-2026
    python generate_notebooks.py --lab 01_projector_mnist --variant fashion \\
        --set DATASET=fashion-mnist --set EPOCHS=5

How a lab source is written, and the steps from it to the notebooks: ``authoring/``.
"""

import importlib.util
import sys

if __name__ == "__main__":
    # The course builder lives beside the kit, not in the package students install, and
    # needs the instructor's extra; say so instead of a traceback about jupytext.
    missing = [m for m in ("jupytext", "nbgrader") if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(
            f"generate_notebooks.py needs {' and '.join(missing)}: "
            'pip install -e ".[instructor]" in this checkout'
        )
    from authoring import main

    sys.exit(main())
