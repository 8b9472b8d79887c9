-- Feature counts of sequencing controls (long): one row per control library per feature with reads.
select
    c.batch_id,
    c.sample_id,
    l.sample_role,
    c.feature_id,
    c.read_count
from {{ ref('stg_seq__counts') }} as c
inner join {{ ref('int_seq__libraries') }} as l
    on c.batch_id = l.batch_id
    and c.sample_id = l.sample_id
where l.link_status = 'CONTROL'
