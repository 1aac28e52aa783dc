"""Map a CRM export onto the canonical contract through a YAML mapping, not code.

A mapping (see ``crm/mappings/*.yaml`` for two complete, commented examples) says:

- ``sources``: the input file(s) and how to read them (CSV separator, encoding, a trailing
  empty column, number format) and value maps applied as a file is read; a further source
  is joined onto the first (``on``, or ``left_on``/``right_on``; main-table rows without a
  match are counted in a warning);
- ``missing_values``: placeholders meaning "not answered" (X Education's ``Select``),
  globally and per column;
- ``fields``: canonical fields (``lead_id``, ``created_at``, ``source``, ``country`` ...)
  from source columns, with value maps and date formats; ``created_at`` can be synthesized
  when the export has no date, from an ordering column (``from_order``) or from the rows'
  order in the file (``row_order``: between two dates, or within the month a column names);
- ``label``: which column/values mark a positive lead (``positive``/``negative``; rows
  under ``drop`` or of any other value are left out), which funnel stage that means and
  when the lead entered it; ``stages``: further stage entries every lead has;
- ``leaky``: columns filled in by sales during or after the outcome, excluded from the
  output unless ``include_leaky`` maps them on purpose (for the leakage check);
  ``known_after_outcome``: columns known only after the outcome, left out quietly;
- ``attributes``: custom lead/account attributes (numeric, categorical, boolean), written
  as ``attr_<snake_name>`` columns of the leads table;
- ``counters``: pre-aggregated engagement counts for exports without an event log, written
  as ``counter_<snake_name>`` columns (numeric, never negative).

docs/MAPPING.md documents every key; ``crm.mapping_schema`` gives the JSON Schema.

``import_export`` writes the four canonical Parquet tables plus ``custom_fields.json`` into
``out_dir``, all or nothing: everything is checked in memory first, written into a temporary
folder beside ``out_dir`` and moved into place only at the end. Training and serving read
the custom columns back with ``load_custom_fields``.

The modules, in the order an import runs through them:

- ``mapping_file``: find and read a mapping (strict YAML), checked by the models of
  ``mapping_model`` (whose scalars ``mapping_values`` reads);
- ``frame``: match the files to the sources, read them as text, join them;
- ``custom``: which columns become ``attr_*``/``counter_*`` columns, leaky columns;
- ``cells``: typing a column's cells (missing values, value maps, numbers, yes/no, times);
- ``creation_time``: when each lead was created;
- ``tables``: canonical fields, the label, the stage history, accounts and leads;
- ``outputs``: ``custom_fields.json``, the summary, the all-or-nothing write;
- ``errors``: what goes wrong, told with file, column and rows;
- ``run``: ``import_export``, the steps in order.
"""

from crm.importer.errors import ImportDataError, ImportOutputError, ImportProblem, MappingError
from crm.importer.mapping_file import MAPPINGS_DIR, MappingLoader, load_mapping, resolve_mapping
from crm.importer.mapping_model import (
    AttributeSpec,
    CanonicalField,
    CounterSpec,
    CsvOptions,
    ExportMapping,
    FieldSpec,
    JoinSpec,
    Kind,
    LabelSpec,
    RowOrder,
    SourceSpec,
    StageSpec,
    StageTime,
)
from crm.importer.mapping_values import MONTHS, snake_name
from crm.importer.outputs import (
    CUSTOM_FIELDS_FILE,
    CustomFields,
    ImportSummary,
    check_out_dir,
    load_custom_fields,
)
from crm.importer.run import import_export

__all__ = [
    "CUSTOM_FIELDS_FILE",
    "MAPPINGS_DIR",
    "MONTHS",
    "AttributeSpec",
    "CanonicalField",
    "CounterSpec",
    "CsvOptions",
    "CustomFields",
    "ExportMapping",
    "FieldSpec",
    "ImportDataError",
    "ImportOutputError",
    "ImportProblem",
    "ImportSummary",
    "JoinSpec",
    "Kind",
    "LabelSpec",
    "MappingError",
    "MappingLoader",
    "RowOrder",
    "SourceSpec",
    "StageSpec",
    "StageTime",
    "check_out_dir",
    "import_export",
    "load_custom_fields",
    "load_mapping",
    "resolve_mapping",
    "snake_name",
]
