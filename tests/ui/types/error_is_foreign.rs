use resilient::resilient;

#[resilient(timeout = "2s")]
async fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

fn main() {}
