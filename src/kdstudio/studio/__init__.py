"""What the browser studio needs beyond the pipeline stages, as a plain library (no Gradio).

By concern: run views (:mod:`.runviews`), uploads and data (:mod:`.uploads`), models and
predictions (:mod:`.models`), the augmentation preview's POS dictionary (:mod:`.preview`), job
launch and cancel (:mod:`.launch`), progress snapshots (:mod:`.progress`), result tables
(:mod:`.tables`) and export (:mod:`.export`). Everything is read from the run folder, so a
page reload, a second browser or a restarted server sees the same state. The UI's tabs talk
to this package only.
"""

from ..machine import cpu_description as cpu_description  # re-exported for the UI
from .access import admin_key_required, check_admin
from .errors import UserInputError
from .export import export_files, model_card
from .launch import (
    AFTER_TEACHER,
    cancel,
    cancel_active,
    resume,
    reusable_teacher,
    start_distillation,
    start_run,
)
from .models import (
    CORE_KINDS,
    MODEL_KINDS,
    ModelAnswer,
    clean_text,
    predict,
    run_models,
    soft_labels,
    softmax,
    teacher_for,
)
from .preview import AugmentedCopy, augment_preview, preview_pos_dictionary
from .progress import Snapshot, snapshot, watch_target
from .reference import (
    reference_benchmark,
    reference_figures,
    reference_headline,
    reference_table,
    reference_title,
)
from .runviews import (
    active_job,
    default_run,
    get_run,
    has_models,
    read_results,
    run_choices,
    run_rows,
    runs_root,
    teacher_metrics,
)
from .tables import (
    comparison_table,
    disagreements,
    finished_results,
    headline,
    result_figures,
    seed_table,
    trade_offs,
)
from .uploads import (
    check_model_ref,
    check_upload,
    dataset_title,
    is_stored_upload,
    load_task_cached,
    max_upload_bytes,
    store_upload,
    table_columns,
)

__all__ = [
    "AFTER_TEACHER", "CORE_KINDS", "MODEL_KINDS", "admin_key_required", "check_admin", "AugmentedCopy", "augment_preview", "ModelAnswer", "Snapshot", "UserInputError", "active_job",
    "cancel", "cancel_active", "check_model_ref", "check_upload", "dataset_title", "clean_text", "comparison_table",
    "default_run", "disagreements", "export_files", "finished_results", "get_run",
    "has_models", "headline", "trade_offs", "reference_benchmark", "reference_figures",
    "reference_headline", "reference_table", "reference_title", "is_stored_upload", "load_task_cached", "max_upload_bytes", "model_card",
    "predict", "preview_pos_dictionary", "read_results", "result_figures", "resume", "reusable_teacher", "run_choices",
    "run_models", "run_rows", "runs_root", "seed_table", "snapshot", "soft_labels", "softmax",
    "start_distillation", "start_run", "store_upload", "table_columns", "teacher_for",
    "teacher_metrics", "watch_target",
]
