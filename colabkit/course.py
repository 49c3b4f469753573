"""Where the course lives on GitHub: the one place the repository slug is written.

The badges in README.md and in each notebook, and each notebook's install cell, must use these;
tests/test_notebooks.py checks that they do, and `python -m colabkit.course` prints them.
"""

REPO_SLUG = "open-gan-course/gan-papers"
BRANCH = "main"


def colab_url(path: str) -> str:
    return f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{BRANCH}/{path}"


def badge(path: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(path)})"


def install_spec() -> str:
    """What the Colab install cell passes to pip: this repository, never the package index."""
    return f"colabkit[metrics] @ git+https://github.com/{REPO_SLUG}@{BRANCH}"


if __name__ == "__main__":
    import pathlib

    for nb in sorted(pathlib.Path("notebooks").glob("*.ipynb")):
        print(badge(nb.as_posix()))
    print(install_spec())
