-- Sequencing controls: one row per negative-control or mock-community library (never mixed with patient
-- samples); their counts are in sequencing_control_counts.
select
    batch_id,
    sample_id,
    sample_role,
    run_id,
    table_format,
    cast(library_size as {{ dbt.type_bigint() }}) as library_size,
    cast(n_features as {{ dbt.type_int() }}) as n_features
from {{ ref('int_seq__libraries') }}
where link_status = 'CONTROL'
