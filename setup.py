from setuptools import find_packages, setup

setup(
    name="tinygrad_attn",
    version="0.2.0",
    description="A small NumPy tensor library with reverse-mode autograd, for seeing how "
                "attention and backpropagation work",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["tinygrad_attn", "tinygrad_attn.*"]),
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        # erf for the exact GELU: vectorised and accurate to float64 round-off.
        "scipy>=1.9",
        # Builds the DOT source of computation-graph pictures (tinygrad_attn.viz).
        "graphviz>=0.20",
        # Renders DOT to SVG/PNG with no system Graphviz: a self-contained `dot` port,
        # wheels only for these platforms (elsewhere viz falls back to the system `dot`).
        "graphviz-pure>=0.2.2,<0.3; (platform_system == 'Linux' and (platform_machine == "
        "'x86_64' or platform_machine == 'aarch64')) or platform_system == 'Darwin' or "
        "platform_system == 'Windows'",
        # Checkpoints (ta.save/ta.load): the safe tensor format PyTorch and Hugging Face
        # read, through its NumPy API; the format never holds code, unlike pickle.
        "safetensors>=0.4",
        # set_num_threads: sets the thread count of NumPy's BLAS (OpenBLAS, MKL, ...) and
        # keeps it at one thread inside the library's own parallel parts.
        "threadpoolctl>=3.1",
        # Attention heatmaps and the gradient-flow chart (tinygrad_attn.viz).
        "matplotlib>=3.7",
        # The demo command picks its BLAS thread count (never the library).
        "threadpoolctl>=3.1",
    ],
    extras_require={
        # playwright drives the system Chromium in the stepper's browser test; nbclient,
        # nbformat and ipykernel run examples/tour.ipynb in the tests (tests/test_docs.py
        # runs the tutorials' Markdown code blocks itself: a fence plugin would re-run
        # every earlier block for each block that builds on them).
        "dev": ["pytest>=7", "hypothesis>=6", "playwright>=1.40", "nbclient>=0.10",
                "nbformat>=5.9", "ipykernel>=6.25"],
    },
)
