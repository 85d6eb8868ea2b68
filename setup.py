"""Packaging for scnotebook, driven by settings.ini (nbdev 2 layout)."""
from configparser import ConfigParser
from pathlib import Path
import shutil
import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable", "6 - Mature", "7 - Inactive"]
# The stage notebooks and shipped configs travel inside the package, so that `scnotebook reproduce`
# also works from an installed wheel (a checkout uses nbs/ and configs/ directly).
here = Path(__file__).resolve().parent
for folder, pattern in (("nbs", "[0-9]*.ipynb"), ("configs", "*.yaml")):
    src, dst = here / folder, here / "scnotebook" / "_stages" / folder
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.glob(pattern): shutil.copy2(f, dst / f.name)

lic = licenses[cfg["license"]]
min_python = cfg["min_python"]
req = lambda key: cfg.get(key, "").split()

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    license=lic[0],
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "License :: " + lic[1],
        "Natural Language :: " + cfg["language"].title(),
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=["scnotebook", "scnotebook.*"]),
    include_package_data=True,
    package_data={"scnotebook": ["_stages/nbs/*.ipynb", "_stages/configs/*.yaml"]},
    install_requires=req("requirements"),
    extras_require={"dev": req("dev_requirements"), "tpu": req("tpu_requirements"), "peers": req("peers_requirements")},
    python_requires=">=" + min_python,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d'],
    },
    author=cfg["author"],
    author_email=cfg["author_email"],
    description=cfg["description"],
    keywords=cfg["keywords"],
)
