with

source as (

    select * from {{ source('audit', 'submission_files') }}

),

final as (

    select
        file_id,
        kind,
        file_name,
        status,
        received_at,
        coalesce(loaded_at, registered_at) as loaded_at,
        rows_total,
        rows_quarantined,
        status in {{ accepted_file_statuses() }} as is_eligible
    from source

)

select * from final
