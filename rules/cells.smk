# Frozen cell-state embeddings of the control cells: pca, scvi or scgpt (config 'cells.encoder').

CELL_ENCODER_SECTIONS = ("pca", "scvi", "scgpt")
SCGPT_FILES = {
    "scgpt_weights": "best_model.pt",
    "scgpt_vocab": "vocab.json",
    "scgpt_args": "args.json",
}


def cells_params():
    """config 'cells' with only the chosen encoder's settings: editing another's reruns nothing."""
    settings = config["cells"]
    return {
        key: value
        for key, value in settings.items()
        if key not in CELL_ENCODER_SECTIONS or key == settings["encoder"]
    }


def scgpt_checkpoint(wildcards):
    """scgpt: the checkpoint's three files, as inputs (a changed checkpoint reruns the stage, and their
    sha256 go into the provenance). Absent files are left to the stage, which says where to get them.
    """
    settings = config["cells"]
    directory = settings["scgpt"]["model_dir"]
    if settings["encoder"] != "scgpt" or not directory:
        return {}
    files = {name: Path(directory) / file for name, file in SCGPT_FILES.items()}
    return {name: str(path) for name, path in files.items() if path.is_file()}


def cells_gpus():
    """One GPU for scgpt and scvi unless their device is cpu; none for pca."""
    settings = config["cells"]
    encoder = settings["encoder"]
    if encoder == "pca" or settings[encoder]["device"] == "cpu":
        return 0
    return 1


rule cells:
    input:
        unpack(scgpt_checkpoint),
        h5ad=rules.dataset.output.h5ad,
        code=stage_code("cells"),
    output:
        embeddings=f"{OUT}/cells/control_embeddings.safetensors",
    log:
        log_path("cells"),
    benchmark:
        benchmark_path("cells")
    conda:
        "../envs/cell_encoders.yaml"
    resources:
        gpu=cells_gpus(),
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(cells_params()),
    shell:
        "{params.cli} cells {params.io} --params {params.config:q} 2> {log}"
