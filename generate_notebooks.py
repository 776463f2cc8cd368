"""Build every lab notebook from its text source in notebooks/source/.

    python generate_notebooks.py            # notebooks/solutions/ and notebooks/student/
    python generate_notebooks.py --check    # exit 1 if a committed notebook is out of date
    python generate_notebooks.py --repo https://github.com/you/labkit --ref fall-2026
    python generate_notebooks.py --lab 01_projector_mnist --variant fashion \\
        --set DATASET=fashion-mnist --set EPOCHS=5

How a lab source is written, and the steps from it to the notebooks: ``labkit/authoring/``.
"""

import sys

from labkit.authoring import main

if __name__ == "__main__":
    sys.exit(main())
