with

source as (

    {{ eligible_rows('dossiers') }}

),

typed as (

    select
        {{ lineage_columns() }},
        nullif(btrim(source.dossier_id), '') as dossier_id,
        nullif(btrim(source.unit_code), '') as unit_code,
        coalesce(nullif(btrim(source.field_code), ''), 'ALL') as field_code,
        nullif(btrim(source.procedure_code), '') as procedure_code,
        -- 'online' / 'direct' / 'postal': the reading validation accepted the cell with (003_normalise.sql)
        raw.channel_of(source.channel) as channel,
        {{ to_timestamp_local('source.received_at') }} as received_at,
        {{ to_timestamp_local('source.due_at') }} as due_at,
        {{ to_timestamp_local('source.completed_at') }} as completed_at,
        nullif(btrim(source.status), '') as status,
        case lower(btrim(source.satisfied))
            when 'true' then true when 'false' then false
        end as is_satisfied
    from source

),

final as (

    select
        {{ surrogate_key(['file_id', 'row_number']) }} as dossier_row_id,
        *,
        dossier_id is not null and unit_code is not null and received_at is not null as is_well_formed
    from typed

)

select * from final
