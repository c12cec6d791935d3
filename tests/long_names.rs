//! A default call-site name longer than the registry's limit (a deep module path) is shortened
//! to fit, keeping its end, rather than failing the call.

mod common;

mod an_unusually_long_module_name_that_a_code_generator_might_produce_one {
    pub mod an_unusually_long_module_name_that_a_code_generator_might_produce_two {
        pub mod an_unusually_long_module_name_that_a_code_generator_might_produce_three {
            pub mod an_unusually_long_module_name_that_a_code_generator_might_produce_four {
                use crate::common::TestError;

                #[resilient::resilient(timeout = "1s")]
                pub async fn deep() -> Result<u32, TestError> {
                    Ok(7)
                }
            }
        }
    }
}

use an_unusually_long_module_name_that_a_code_generator_might_produce_one::an_unusually_long_module_name_that_a_code_generator_might_produce_two::an_unusually_long_module_name_that_a_code_generator_might_produce_three::an_unusually_long_module_name_that_a_code_generator_might_produce_four::deep;

#[tokio::test]
async fn a_call_site_whose_default_name_is_too_long_still_runs() {
    assert_eq!(deep().await, Ok(7));
    let metrics = resilient::registry().call_site_metrics();
    let site = metrics
        .iter()
        .find(|site| site.name.ends_with("four::deep"))
        .expect("the call site counts its call under a shortened name");
    assert!(site.name.len() <= resilient::MAX_NAME_LEN, "{}", site.name);
    assert!(site.name.starts_with('…'), "{}", site.name);
    assert_eq!(site.calls, 1);
}
