"""Under pytest the notebooks run in smoke mode, writing into a throw-away folder.

Set here, at collection time, so the kernels nbval starts for notebooks/*.ipynb inherit it.
Set COLABKIT_SMOKE=0 explicitly to run notebooks at full size under pytest.
"""

import os
import tempfile

os.environ.setdefault("COLABKIT_SMOKE", "1")
_scratch = tempfile.mkdtemp(prefix="colabkit-tests-")
os.environ.setdefault("COLABKIT_HOME", os.path.join(_scratch, "home"))
os.environ.setdefault("COLABKIT_WORK", os.path.join(_scratch, "work"))
os.environ.setdefault("MPLBACKEND", "Agg")
