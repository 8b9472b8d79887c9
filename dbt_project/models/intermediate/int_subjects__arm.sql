-- One row per randomised patient: the arm code. Blinded build (var unblinded = false, the default): the
-- constant 'BLINDED', and the restricted randomisation list is not referenced at all (this branch compiles
-- without it). Unblinded build: the arm from restricted.randomisation_list by randomisation number.
with subjects as (
    select subject_id, randno from {{ ref('int_subjects') }}
)
{% if var('unblinded', false) | string | lower in ('true', '1', 'yes') %}
,

randomisation_list as (
    select upper(trim(randno)) as randno, upper(trim(arm)) as arm
    from {{ source('restricted', 'randomisation_list') }}
)

select
    s.subject_id,
    coalesce(l.arm, 'NOT IN LIST') as arm_code,
    'UNBLINDED' as blinding_status
from subjects as s
left join randomisation_list as l
    on s.randno = l.randno
{% else %}

select
    subject_id,
    'BLINDED' as arm_code,
    'BLINDED' as blinding_status
from subjects
{% endif %}
