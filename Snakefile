# DyGenePT: predict single-cell responses to genetic perturbations from context-dependent gene facets.
#   snakemake --cores 2                                   (config/config.yaml)
#   snakemake --configfile config/demo.yaml --cores 2     (the embedded offline demo; or: make demo)
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, f"{workflow.basedir}/workflow")
from dygenept.config_check import config_error


configfile: "config/config.yaml"


# Snakemake names a bad key inside a page of schema; say it in a few lines, with the file and a guess.
try:
    validate(config, schema="config/schema.yaml")
except WorkflowError:
    raise WorkflowError(
        config_error(
            config,
            f"{workflow.basedir}/config/schema.yaml",
            workflow.config_settings.configfiles,
            workflow.config_settings.config,
        )
    ) from None


report: "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    gene_set=GENE_SET_PATTERN,


include: "rules/annotations.smk"
include: "rules/models.smk"
include: "rules/data.smk"
include: "rules/genes.smk"
include: "rules/knowledge.smk"
include: "rules/enrich.smk"
include: "rules/facets.smk"
include: "rules/facet_embed.smk"
include: "rules/cells.smk"
include: "rules/train.smk"
include: "rules/folds.smk"
include: "rules/train_folds.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/predict.smk"


check_output_folders()


# Rules that talk to the network run where Snakemake runs (a workstation, or a cluster's login node):
# compute nodes often have no outbound internet. They wait on servers, not on CPUs. (fetch_annotations,
# which exists only while its cache is empty, says so itself.)
localrules:
    fetch_dataset,
    fetch_string,
    knowledge,


rule all:
    default_target: True
    input:
        final_targets(),
