//! The store conformance suite: every case runs against every backend.
//!
//! Each case is written once, as `async fn case(store: Arc<dyn Store>)` in a module per feature;
//! [`conformance!`] turns the list below into `sqlite::<case>` and `postgres::<case>` tests, each
//! on a fresh database (see `harness`). Cases that only make sense on PostgreSQL (concurrent
//! migrations, outages, timeouts) live in `postgres_only`; SQLite's own (old databases, closing,
//! many stores in one process) in `sqlite_only`.
//!
//! Run with PostgreSQL: `KEYCARD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test
//! cargo test -p keycard-store`.

mod harness;

mod clients;
mod concurrency;
mod dpop;
mod email;
mod factors;
mod keys_audit;
mod mail;
mod operators;
mod password_reset;
mod postgres_only;
mod revocation;
mod rotation;
mod sessions;
mod sqlite_only;
mod users;
mod webhooks;

/// Declares each `module::case` as a test on SQLite and on PostgreSQL.
macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::harness::Backend::sqlite().await;
                    crate::$module::$case(backend.store.clone()).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(backend) = crate::harness::Backend::postgres().await else { return };
                    crate::$module::$case(backend.store.clone()).await;
                }
            )*
        }
    };
}

conformance! {
    dpop::a_bound_session_rotates_only_with_its_key,
    dpop::a_dpop_proof_is_spent_once_until_it_expires,
    email::a_signup_link_is_written_with_the_user_and_verifies_it_and_its_sessions_once,
    email::a_new_link_supersedes_the_old_one_and_links_expire,
    email::an_address_changes_only_on_confirmation_and_never_to_a_taken_one,
    email::a_cancel_token_cancels_a_pending_change_or_undoes_a_confirmed_one,
    email::concurrent_spends_of_one_verification_token_have_exactly_one_winner,

    password_reset::a_reset_request_stores_its_token_mail_and_event_and_an_unknown_address_writes_nothing,
    password_reset::a_new_request_supersedes_the_old_token_and_tokens_expire,
    password_reset::concurrent_spends_of_one_reset_token_have_exactly_one_winner,

    users::users_are_created_and_found_by_email_and_by_id,
    users::a_second_account_with_the_same_email_is_refused_as_email_taken,
    users::ping_answers,

    sessions::a_new_session_is_listed_and_found_by_its_refresh_token,
    sessions::sessions_are_listed_newest_first_and_only_to_their_owner,
    sessions::rotation_pushes_idle_expiry_forward_but_never_past_the_absolute_limit,
    sessions::an_idle_session_cannot_rotate_but_its_access_tokens_live_until_the_absolute_limit,
    sessions::a_session_past_its_absolute_limit_is_over_everywhere,

    rotation::rotation_marks_the_token_used_and_makes_the_replacement_live,
    rotation::an_unknown_token_is_invalid_and_changes_nothing,
    rotation::reusing_a_rotated_token_revokes_the_session_and_its_replacement,
    rotation::a_retry_inside_the_reuse_interval_rotates_again_and_retires_the_unreceived_token,
    rotation::a_retry_after_the_reuse_interval_is_reuse,
    rotation::a_refresh_from_another_device_revokes_a_bound_session_in_the_rotation,
    rotation::fifty_concurrent_rotations_of_one_token_have_exactly_one_winner,
    rotation::a_reuse_is_classified_race_or_theft_from_the_two_presenters,
    rotation::concurrent_retries_inside_the_reuse_interval_leave_exactly_one_live_token,

    revocation::revoking_one_session_leaves_the_others_alone,
    revocation::revoking_all_sessions_but_one_keeps_only_that_one,
    revocation::revoking_all_sessions_ends_every_one,
    revocation::changing_the_password_revokes_every_other_session,
    revocation::deleting_a_user_cascades_and_keeps_its_revocations_in_the_feed,
    revocation::the_revocation_feed_pages_in_order,
    revocation::concurrent_logouts_publish_each_session_once,
    revocation::a_feed_reader_polling_during_concurrent_revocations_misses_none,

    clients::clients_are_registered_listed_and_found,
    clients::a_new_secret_replaces_the_old_one,
    clients::revoking_a_grant_publishes_it_once_and_draws_a_new_one,
    clients::removing_a_client_revokes_its_grant,
    clients::an_assertion_is_spent_once_until_it_expires,

    keys_audit::signing_keys_are_stored_once_per_kid,
    keys_audit::a_key_is_retired_once_and_kept,
    keys_audit::the_wrapped_master_key_is_stored_once_and_replaced_by_compare_and_set,
    keys_audit::audit_events_are_appended_and_filtered_newest_first,
    keys_audit::pruning_the_audit_log_deletes_only_events_before_the_cutoff,
    keys_audit::a_rotation_records_its_audit_event_with_its_outcome,

    operators::disabling_a_user_revokes_their_live_sessions_onto_the_feed,
    operators::a_disabled_users_access_tokens_are_refused_and_no_session_of_theirs_rotates,
    operators::enabling_a_user_lets_new_sessions_work_and_leaves_old_ones_revoked,
    operators::disabling_or_enabling_an_unknown_user_is_none,
    operators::an_operator_revokes_any_live_session_by_id,
    operators::users_are_listed_by_email_with_filter_pages_and_live_session_counts,
    operators::every_users_live_sessions_are_listed_newest_first,
    operators::disabling_a_user_while_their_sessions_rotate_and_log_in_leaves_none_usable,

    concurrency::concurrent_writes_with_failing_ones_each_get_their_own_answer,

    mail::queued_mail_is_claimed_once_oldest_first_and_listed,
    mail::a_sent_message_is_never_claimed_again,
    mail::a_failed_attempt_is_retried_at_its_time_and_a_final_failure_is_kept,
    mail::a_claim_never_finished_is_due_again_after_its_lease,
    mail::concurrent_claimers_never_get_the_same_message,

    webhooks::an_event_queues_one_delivery_per_subscribed_endpoint_with_one_id,
    webhooks::a_reuse_queues_its_webhook_with_the_verdict_in_the_rotation,
    webhooks::deliveries_are_claimed_with_a_lease_retried_and_given_up_on,
    webhooks::concurrent_claimers_never_get_the_same_delivery,
    webhooks::changes_write_their_event_and_webhook_in_their_own_transaction,

    factors::a_factor_is_active_only_once_confirmed_and_its_first_confirmation_brings_the_codes,
    factors::a_totp_step_is_accepted_once_and_never_an_older_one,
    factors::recovery_codes_are_spent_once_replaced_together_and_go_with_the_last_factor,
    factors::a_waiting_login_takes_a_bounded_number_of_answers_and_completes_once,
    factors::a_step_up_is_kept_on_the_session_and_carried_by_its_rotations,
    factors::a_passkey_counter_only_moves_forward_and_a_rename_is_the_owners,
    factors::a_webauthn_challenge_is_taken_once_before_it_expires,
}
